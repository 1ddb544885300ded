"""Error reports ("Signaler une erreur"): any reader flags a problem on a published fiche;
moderators list the open reports and close each with a note.

Anyone may report, signed in or not. The optional e-mail lets a moderator answer: it is shown
to moderators only, never to readers, and never exported. Flooding is bounded twice: per
browser session (:data:`MAX_PER_SESSION` reports per :data:`SESSION_WINDOW`, counted in the
database through a hash of the session id, so it holds across server processes) and for the
whole site (:data:`MAX_PER_HOUR`). Every write runs in one transaction; closing checks the
moderator role here, not only in the page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

import sqlalchemy as sa

from territoires.catalogue.auth import User, require
from territoires.catalogue.storage import Store
from territoires.errors import ConflictError, Problem, TerritoiresError, ValidationError

#: Longest report (characters); longer is refused, not cut.
MAX_MESSAGE = 2_000
#: Shortest useful report.
MIN_MESSAGE = 10
#: Longest closing note.
MAX_NOTE = 2_000
#: Reports one browser session may send per window.
MAX_PER_SESSION = 3
SESSION_WINDOW = dt.timedelta(hours=1)
#: Reports the whole site accepts per hour (beyond: "réessayez plus tard").
MAX_PER_HOUR = 100
_EMAIL_RE = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']+\.[^@\s<>\"']{2,}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class RateLimitedError(TerritoiresError):
    """Too many reports in a short time; nothing was written."""


@dataclass(frozen=True)
class Report:
    """One error report, as a moderator sees it."""

    id: int
    initiative_id: str
    message: str
    email: str | None
    created_at: dt.datetime
    status: str
    closed_by: str | None
    closed_at: dt.datetime | None
    note: str | None


def session_hash(session_id: str) -> str:
    """What is stored of a session id: its sha256 (enough to count, not to identify)."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _clean_message(message: str) -> str:
    text = _CONTROL_RE.sub("", str(message or "")).strip()
    if len(text) < MIN_MESSAGE:
        raise ValidationError([Problem(f"décrivez l'erreur en quelques mots (au moins "
                                       f"{MIN_MESSAGE} caractères)", column="message")],
                              "Signalement refusé")
    if len(text) > MAX_MESSAGE:
        raise ValidationError([Problem(f"message trop long : {len(text)} caractères, au plus "
                                       f"{MAX_MESSAGE}", column="message")],
                              "Signalement refusé")
    return text


def _clean_email(email: str | None) -> str | None:
    text = str(email or "").strip()
    if not text:
        return None
    if len(text) > 320 or not _EMAIL_RE.match(text):
        raise ValidationError([Problem("adresse e-mail invalide (attendu nom@domaine.fr), ou "
                                       "laissez le champ vide", column="email", value=text[:80])],
                              "Signalement refusé")
    return text.lower()


def submit(store: Store, initiative_id: str, message: str, *, session_id: str,
           email: str | None = None, now: dt.datetime | None = None) -> int:
    """Record a report on a published fiche; return its number. Open to everyone, bounded
    per session and per hour (:class:`RateLimitedError`); French refusals, nothing written."""
    text = _clean_message(message)
    mail = _clean_email(email)
    key = session_hash(session_id)
    now = now or dt.datetime.now(dt.UTC)
    reports = store.t["error_reports"]
    ini = store.t["initiatives"]

    def write(conn: sa.Connection) -> int:
        # a write first: serialises concurrent reports, so the counts below cannot go stale
        store.audit(conn, "lecteur", "report", initiative_id)
        exists = conn.execute(sa.select(ini.c.id).where(ini.c.id == initiative_id)).scalar()
        if exists is None:
            raise ValidationError([Problem("fiche inconnue dans le catalogue publié",
                                           column="initiative_id", value=initiative_id)],
                                  "Signalement refusé")
        count = sa.select(sa.func.count()).select_from(reports)
        mine = conn.execute(count.where(reports.c.session_hash == key,
                                        reports.c.created_at > now - SESSION_WINDOW)).scalar()
        if int(mine or 0) >= MAX_PER_SESSION:
            raise RateLimitedError(
                f"Vous avez déjà envoyé {MAX_PER_SESSION} signalements dans l'heure : merci ! "
                "Réessayez plus tard. Rien n'a été enregistré.")
        recent = conn.execute(count.where(reports.c.created_at > now - dt.timedelta(hours=1)))
        if int(recent.scalar() or 0) >= MAX_PER_HOUR:
            raise RateLimitedError(
                "Trop de signalements reçus dans l'heure sur ce site : réessayez plus tard. "
                "Rien n'a été enregistré.")
        result = conn.execute(reports.insert().values(
            initiative_id=initiative_id, message=text, email=mail, session_hash=key,
            created_at=now, status="open"))
        return int(result.inserted_primary_key[0])

    return store.transaction("l'enregistrement du signalement", write)


def _report(row: sa.Row) -> Report:
    m = row._mapping
    return Report(id=int(m["id"]), initiative_id=m["initiative_id"], message=m["message"],
                  email=m["email"], created_at=m["created_at"], status=m["status"],
                  closed_by=m["closed_by"], closed_at=m["closed_at"], note=m["note"])


def list_reports(store: Store, user: User, status: str | None = "open",
                 limit: int = 500) -> list[Report]:
    """Reports with ``status`` (None: all), newest first. Moderators only."""
    require(user, "moderateur")
    reports = store.t["error_reports"]
    query = sa.select(reports).order_by(reports.c.created_at.desc(), reports.c.id.desc())
    if status is not None:
        query = query.where(reports.c.status == status)
    return store.transaction("la lecture des signalements", lambda conn: [
        _report(r) for r in conn.execute(query.limit(limit))])


def open_count(store: Store, user: User) -> int:
    """Number of open reports (moderators only; one cheap query)."""
    require(user, "moderateur")
    reports = store.t["error_reports"]
    return int(store.transaction("le comptage des signalements", lambda conn: conn.execute(
        sa.select(sa.func.count()).select_from(reports).where(reports.c.status == "open")
    ).scalar()) or 0)


def close(store: Store, user: User, report_id: int, note: str) -> None:
    """Close an open report with a note (moderators only). Closing one already closed by
    someone else is refused (:class:`ConflictError`): nothing is overwritten."""
    require(user, "moderateur")
    text = _CONTROL_RE.sub("", str(note or "")).strip()
    if not text:
        raise ValidationError([Problem("note de clôture obligatoire (ce qui a été fait)",
                                       column="note")], "Clôture refusée")
    if len(text) > MAX_NOTE:
        raise ValidationError([Problem(f"note trop longue : {len(text)} caractères, au plus "
                                       f"{MAX_NOTE}", column="note")], "Clôture refusée")
    reports = store.t["error_reports"]

    def write(conn: sa.Connection) -> None:
        done = conn.execute(reports.update().where(
            reports.c.id == report_id, reports.c.status == "open").values(
            status="closed", closed_by=user.key, closed_at=dt.datetime.now(dt.UTC),
            note=text)).rowcount
        if not done:
            raise ConflictError(f"Le signalement n° {report_id} n'est pas ouvert (déjà clos, "
                                "ou inconnu). Rien n'a été modifié.")
        store.audit(conn, user.key or "?", "report_close", str(report_id), text[:200])

    store.transaction("la clôture du signalement", write)

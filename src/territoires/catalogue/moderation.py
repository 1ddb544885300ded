"""Contribution workflow: proposals, moderation, published versions, diff, audit log.

Every write function takes the acting :class:`~territoires.catalogue.auth.User`, checks its role
itself
(:func:`territoires.catalogue.auth.require`) and runs in one transaction (all or nothing):

- :func:`submit_new` / :func:`submit_edit`: a contributor's fiche waits in the queue; a
  moderator's is published at once (its proposal is recorded as published);
- :func:`publish` / :func:`reject`: decide a pending proposal (a reason is required to reject,
  the author reads it on "Mes propositions");
- :func:`restore`: publish an old version again, as a new version.

No lost update: an edit carries the ``base_version`` its author opened. Saving or publishing it
while another version has been published since is refused with :class:`ConflictError`
(the page keeps what the author typed). On PostgreSQL the initiative row is locked
(``SELECT … FOR UPDATE``) for the check-and-write, so two concurrent publishes cannot both
pass; on SQLite writes are serialised by the database lock.

Only published data lives in the five catalogue tables; proposals and versions are JSON
payloads (:func:`territoires.catalogue.storage.catalogue_payload`) of the one-initiative rows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from territoires import vocab
from territoires.catalogue import export, model, validation
from territoires.catalogue.auth import User, require
from territoires.catalogue.storage import (
    Store,
    catalogue_payload,
    dump_payload,
    load_payload,
    payload_catalogue,
)
from territoires.errors import (
    ConflictError,
    Problem,
    StorageError,
    TerritoiresError,
    ValidationError,
)

#: Bounds of one fiche, the same for imports and forms (checked by
#: :func:`territoires.catalogue.validation.validate`; refused beyond, with a French message).
MAX_TEXT = validation.MAX_TEXT_CHARS
MAX_SHORT_TEXT = validation.MAX_SHORT_TEXT_CHARS
MAX_ROWS = validation.MAX_ROWS_PER_INITIATIVE
#: Largest fiche saved from a form or proposed by a contributor's import (its JSON payload).
MAX_PAYLOAD_BYTES = 500_000
MAX_REASON = 2_000
#: Source recorded on funding lines entered in the forms.
FORM_SOURCE = "contribution"

KIND_LABELS = {"new": "Nouvelle fiche", "edit": "Modification", "restore": "Restauration",
               "import": "Import", "migration": "Version initiale"}
STATUS_LABELS = {"pending": "En attente de modération", "published": "Publiée",
                 "rejected": "Refusée"}

#: French labels of every field shown in diffs (table, column) -> label.
FIELD_LABELS: dict[str, str] = {
    "id": "Identifiant", "title": "Titre", "summary": "Résumé", "scale": "Échelle",
    "start_date": "Date de début", "end_date": "Date de fin", "themes": "Thèmes",
    "publics": "Publics", "alliance_levels": "Niveaux d'alliance", "maturity": "Maturité",
    "objectives": "Objectifs", "actions": "Actions", "results": "Résultats",
    "difficulties": "Difficultés", "lessons": "Enseignements", "outlook": "Perspectives",
    "source_document": "Document source", "source_sheet": "Feuille source",
    "source_url": "Lien source", "contact_organisation": "Contact : structure",
    "contact_role": "Contact : fonction", "contact_email": "Contact : e-mail (privé)",
}
TABLE_TITLES = {"initiatives": "Fiche", "organisations": "Structures",
                "territories": "Territoires", "indicators": "Indicateurs",
                "funding": "Financements"}
_IGNORED = {"created_at", "updated_at", "version"}
_VOCAB_FIELDS = {"scale": vocab.SCALES, "maturity": vocab.MATURITY, "themes": vocab.THEMES,
                 "publics": vocab.PUBLICS, "alliance_levels": vocab.ALLIANCE_LEVELS}


@dataclass(frozen=True)
class Proposal:
    """One contribution (pending, published or rejected)."""

    id: int
    initiative_id: str
    kind: str
    payload: dict[str, list[dict[str, Any]]]
    base_version: int | None
    author: str
    author_name: str | None
    comment: str | None
    status: str
    reason: str | None
    moderator: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    published_version: int | None

    @property
    def title(self) -> str:
        """Title of the proposed fiche."""
        rows = self.payload.get("initiatives") or [{}]
        return str(rows[0].get("title") or self.initiative_id)


@dataclass(frozen=True)
class Version:
    """One published version of an initiative."""

    initiative_id: str
    version: int
    payload: dict[str, list[dict[str, Any]]]
    kind: str
    author: str
    moderator: str | None
    published_at: dt.datetime
    comment: str | None


@dataclass(frozen=True)
class Submission:
    """What :func:`submit_new`/:func:`submit_edit` did."""

    proposal_id: int
    published: bool
    version: int | None
    initiative_id: str

    def describe(self) -> str:
        """French summary for the page."""
        if self.published:
            return f"Fiche publiée (version {self.version})."
        return ("Proposition enregistrée : elle attend la validation d'un modérateur. Suivez-la "
                "sur la page « Mes propositions ».")


# ---------------------------------------------------------------------------- validation


def validate_catalogue(catalogue: model.Catalogue, index: Any | None,
                       known_initiatives: Iterable[str] = ()) -> list[Problem]:
    """The import's own validation rules (one shared path for import and forms)."""
    return validation.validate(catalogue, index, file=None, known_initiatives=known_initiatives)


def prepare(catalogue: model.Catalogue) -> model.Catalogue:
    """A form's catalogue made complete: child rows point to the initiative, funding lines get
    a stable id (``<initiative>-f<n>``), the initiative's first territory when they name none,
    and the source ``contribution``. Blank rows (every cell empty) are dropped."""
    ini = catalogue.initiatives.copy()
    iid = str(ini.iloc[0]["id"]) if len(ini) else ""
    out: dict[str, pd.DataFrame] = {"initiatives": ini}
    for name in ("organisations", "territories", "indicators", "funding"):
        df = getattr(catalogue, name).copy()
        df = df.reindex(columns=model.TABLE_COLUMNS[name])
        keep = [c for c in df.columns if c not in ("initiative_id", "id", "source")]
        blank = df[keep].apply(lambda col: col.map(validation.is_missing)).all(axis=1)
        df = df[~blank].reset_index(drop=True)
        df["initiative_id"] = iid
        out[name] = df
    fund = out["funding"]
    terr = out["territories"]
    first = (terr.iloc[0]["level"], terr.iloc[0]["code"]) if len(terr) else (None, None)
    used = {str(x) for x in fund["id"] if not validation.is_missing(x)}
    n = 0
    ids = []
    for value in fund["id"]:
        if validation.is_missing(value):
            n += 1
            while f"{iid}-f{n}" in used:
                n += 1
            value = f"{iid}-f{n}"
            used.add(value)
        ids.append(str(value))
    fund["id"] = pd.Series(ids, index=fund.index, dtype=object)
    for col, default in (("territory_level", first[0]), ("territory_code", first[1])):
        fund[col] = [default if validation.is_missing(v) else v for v in fund[col]]
    fund["source"] = [FORM_SOURCE if validation.is_missing(v) else v for v in fund["source"]]
    fund["year_end"] = [ys if validation.is_missing(ye) else ye
                        for ys, ye in zip(fund["year_start"], fund["year_end"], strict=True)]
    return model.Catalogue(**out)


def check(catalogue: model.Catalogue, index: Any | None) -> list[Problem]:
    """Every problem of a one-initiative catalogue from a form (the import rules, bounds
    included)."""
    if len(catalogue.initiatives) != 1:
        return [Problem("une fiche à la fois", sheet="initiatives")]
    return validate_catalogue(catalogue, index)


def _valid_payload(catalogue: model.Catalogue, index: Any | None) -> dict:
    catalogue = prepare(catalogue)
    problems = check(catalogue, index)
    if problems:
        raise ValidationError(problems, summary="La fiche n'est pas enregistrée : corrigez "
                                                "les champs signalés")
    payload = catalogue_payload(catalogue)
    if len(dump_payload(payload).encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise ValidationError([Problem(f"fiche trop volumineuse (plus de "
                                       f"{MAX_PAYLOAD_BYTES // 1000} ko)")])
    return payload


def pending_ids(store: Store) -> set[str]:
    """Identifiers of the fiches with a pending proposal (so that a new fiche gets a free
    identifier even before the others are published)."""
    t = store.t["proposals"]
    return store.transaction("la lecture des propositions", lambda conn: {
        r[0] for r in conn.execute(sa.select(t.c.initiative_id).where(t.c.status == "pending"))})


def new_id(title: str, taken: Iterable[str]) -> str:
    """A free identifier for a new fiche, from its title (``titre-2`` if taken)."""
    base = export.slugify(title or "", 60) or "initiative"
    taken = set(taken)
    ident, n = base, 1
    while ident in taken:
        n += 1
        ident = f"{base}-{n}"
    return ident


# ---------------------------------------------------------------------------- reading


def _proposal(row: Mapping[str, Any]) -> Proposal:
    return Proposal(
        id=int(row["id"]), initiative_id=row["initiative_id"], kind=row["kind"],
        payload=load_payload(row["payload"]), base_version=row["base_version"],
        author=row["author"], author_name=row["author_name"], comment=row["comment"],
        status=row["status"], reason=row["reason"], moderator=row["moderator"],
        created_at=_utc(row["created_at"]), decided_at=_utc(row["decided_at"]),
        published_version=row["published_version"])


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def published(store: Store, initiative_id: str) -> tuple[dict | None, int | None]:
    """(payload, version) of the published initiative, or (None, None)."""

    def read(conn: sa.Connection) -> tuple[dict | None, int | None]:
        version = store.current_version(conn, initiative_id)
        if version is None:
            return None, None
        return store.payloads(conn, [initiative_id])[initiative_id], version

    return store.transaction("la lecture d'une fiche", read)


def queue(store: Store, user: User) -> list[Proposal]:
    """Pending proposals, oldest first (moderators)."""
    require(user, "moderateur")
    return _proposals(store, status="pending")


def my_proposals(store: Store, user: User) -> list[Proposal]:
    """The user's own proposals, newest first."""
    require(user, "contributeur")
    return _proposals(store, author=user.key, newest_first=True)


def get_proposal(store: Store, user: User, proposal_id: int) -> Proposal:
    """One proposal (its author or a moderator)."""
    require(user, "contributeur")
    found = _proposals(store, proposal_id=proposal_id)
    if not found or not (user.at_least("moderateur") or found[0].author == user.key):
        raise TerritoiresError(f"Proposition n° {proposal_id} introuvable.")
    return found[0]


def _proposals(store: Store, *, status: str | None = None, author: str | None = None,
               proposal_id: int | None = None, newest_first: bool = False) -> list[Proposal]:
    t = store.t["proposals"]
    query = sa.select(t)
    if status:
        query = query.where(t.c.status == status)
    if author:
        query = query.where(t.c.author == author)
    if proposal_id is not None:
        query = query.where(t.c.id == proposal_id)
    query = query.order_by(t.c.id.desc() if newest_first else t.c.id)
    return store.transaction("la lecture des propositions", lambda conn: [
        _proposal(r._mapping) for r in conn.execute(query)])


def versions(store: Store, initiative_id: str) -> list[Version]:
    """Published versions of an initiative, oldest first (public: the catalogue's history;
    strip private fields with :func:`public_payload` before showing them)."""
    t = store.t["initiative_versions"]
    query = sa.select(t).where(t.c.initiative_id == initiative_id).order_by(t.c.version)
    return store.transaction("la lecture de l'historique", lambda conn: [
        Version(initiative_id=r.initiative_id, version=int(r.version),
                payload=load_payload(r.snapshot), kind=r.kind, author=r.author,
                moderator=r.moderator, published_at=_utc(r.published_at), comment=r.comment)
        for r in conn.execute(query)])


def audit_log(store: Store, user: User, limit: int = 500) -> pd.DataFrame:
    """The latest audit lines (admins), newest first, with French column names."""
    require(user, "admin")
    t = store.t["audit_log"]
    query = sa.select(t).order_by(t.c.pk.desc()).limit(limit)
    rows = store.transaction("la lecture du journal", lambda conn: [
        dict(r._mapping) for r in conn.execute(query)])
    return pd.DataFrame({
        "Date": [_utc(r["at"]) for r in rows], "Qui": [r["actor"] for r in rows],
        "Action": [ACTION_LABELS.get(r["action"], r["action"]) for r in rows],
        "Cible": [r["target"] or "" for r in rows], "Détail": [r["detail"] or "" for r in rows],
    })


ACTION_LABELS = {
    "propose": "Proposition", "publish": "Publication", "reject": "Refus",
    "restore": "Restauration", "import": "Import", "funding": "Financements nationaux",
    "delete": "Suppression", "role_grant": "Rôle donné", "role_revoke": "Rôle retiré",
    "direct_edit": "Modification directe",
}


# ---------------------------------------------------------------------------- writing


def _insert_proposal(conn: sa.Connection, store: Store, user: User, *, kind: str,
                     initiative_id: str, payload: dict, base_version: int | None,
                     comment: str | None, status: str) -> int:
    t = store.t["proposals"]
    now = dt.datetime.now(dt.UTC)
    result = conn.execute(t.insert().values(
        initiative_id=initiative_id, kind=kind, payload=dump_payload(payload),
        base_version=base_version, author=user.key, author_name=user.name,
        comment=_clip(comment, MAX_REASON), status=status, created_at=now,
        moderator=user.key if status == "published" else None,
        decided_at=now if status == "published" else None))
    return int(result.inserted_primary_key[0])


def _clip(text: str | None, limit: int) -> str | None:
    text = (text or "").strip()
    return text[:limit] or None


def _stale(initiative_id: str, base: int | None, current: int | None) -> ConflictError:
    if current is None:
        return ConflictError(f"La fiche « {initiative_id} » n'existe plus dans le catalogue "
                             "publié. Rien n'a été enregistré.")
    if base is None:
        return ConflictError(f"Une fiche porte déjà l'identifiant « {initiative_id} » "
                             f"(version {current} publiée). Rien n'a été enregistré.")
    return ConflictError(
        f"Conflit de modification : vous êtes parti de la version {base} de la fiche, mais la "
        f"version {current} a été publiée entre-temps par quelqu'un d'autre. Rien n'a été "
        "enregistré : vos saisies sont gardées ; rechargez la fiche publiée, comparez, puis "
        "réappliquez vos changements.")


def _publish_payload(conn: sa.Connection, store: Store, payload: dict, *, kind: str,
                     author: str, moderator: str, comment: str | None,
                     base_version: int | None, proposal_id: int | None) -> int:
    """Check the base version under a row lock and write the new published version."""
    iid = payload["initiatives"][0]["id"]
    # First a write: it serialises publishers (SQLite reserves its write lock, PostgreSQL locks
    # the revision row), so the version read below cannot go stale before the write.
    store.bump_revision(conn)
    current = store.current_version(conn, iid, lock=True)
    if current != base_version:
        raise _stale(iid, base_version, current)
    payload = _merged_private(conn, store, payload, current)
    version = max(current or 0, store.last_recorded_version(conn, iid)) + 1
    written = store.write_initiative(conn, payload_catalogue(payload), version)
    store.add_version(conn, iid, version, written, kind=kind, author=author,
                      moderator=moderator, comment=comment, proposal_id=proposal_id)
    return version


def _merged_private(conn: sa.Connection, store: Store, payload: dict,
                    current: int | None) -> dict:
    """A contributor's edit leaves private fields it could not see as they are."""
    row = payload["initiatives"][0]
    missing = [c for c in model.PRIVATE_COLUMNS if c not in row]
    if not missing:
        return payload
    old = store.payloads(conn, [row["id"]]).get(row["id"]) if current is not None else None
    old_row = old["initiatives"][0] if old else {}
    return {**payload, "initiatives": [{**row, **{c: old_row.get(c) for c in missing}}]}


def _run(store: Store, what: str, fn: Any) -> Any:
    try:
        return store.transaction(what, fn)
    except StorageError as exc:
        if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
            raise ConflictError("Conflit : la fiche vient d'être publiée par quelqu'un "
                                "d'autre. Rien n'a été enregistré ; rechargez-la.") from exc
        raise


def submit_new(store: Store, user: User, catalogue: model.Catalogue, *,
               index: Any | None = None, comment: str | None = None) -> Submission:
    """Propose a new fiche (contributors) or publish it at once (moderators)."""
    require(user, "contributeur")
    payload = _valid_payload(catalogue, index)
    return _submit(store, user, payload, kind="new", base_version=None, comment=comment)


def submit_edit(store: Store, user: User, catalogue: model.Catalogue, base_version: int, *,
                index: Any | None = None, comment: str | None = None) -> Submission:
    """Propose a change to a published fiche opened at ``base_version`` (contributors), or
    publish it at once (moderators). Refused with :class:`ConflictError` if another version
    was published since ``base_version``. Contributors cannot see private fields: left empty,
    they keep their published value."""
    require(user, "contributeur")
    payload = _valid_payload(catalogue, index)
    if not user.at_least("moderateur"):
        row = payload["initiatives"][0]
        for col in model.PRIVATE_COLUMNS:
            if row.get(col) is None:
                row.pop(col, None)
    return _submit(store, user, payload, kind="edit", base_version=int(base_version),
                   comment=comment)


def _submit(store: Store, user: User, payload: dict, *, kind: str, base_version: int | None,
            comment: str | None) -> Submission:
    iid = payload["initiatives"][0]["id"]
    direct = user.at_least("moderateur")

    def write(conn: sa.Connection) -> Submission:
        if not direct:
            current = store.current_version(conn, iid)
            if current != base_version:
                raise _stale(iid, base_version, current)
        pid = _insert_proposal(conn, store, user, kind=kind, initiative_id=iid,
                               payload=payload, base_version=base_version, comment=comment,
                               status="published" if direct else "pending")
        version = None
        if direct:
            version = _publish_payload(conn, store, payload, kind=kind, author=user.key or "?",
                                       moderator=user.key or "?", comment=_clip(comment, 2000),
                                       base_version=base_version, proposal_id=pid)
            t = store.t["proposals"]
            conn.execute(t.update().where(t.c.id == pid).values(published_version=version))
        store.audit(conn, user.key or "?", "direct_edit" if direct else "propose", iid,
                    f"{KIND_LABELS[kind]} n° {pid}"
                    + (f", version {version}" if version else ""))
        return Submission(pid, direct, version, iid)

    return _run(store, "l'enregistrement de la fiche", write)


def publish(store: Store, user: User, proposal_id: int, *, comment: str | None = None,
            index: Any | None = None) -> int:
    """Publish a pending proposal (moderators); returns the new version. Refused if the fiche
    changed since the proposal's base version, or if the proposal was already decided."""
    require(user, "moderateur")
    proposal = get_proposal(store, user, proposal_id)
    problems = check(payload_catalogue(proposal.payload), index)
    if problems:
        raise ValidationError(problems, summary="Proposition non publiable")
    t = store.t["proposals"]

    def write(conn: sa.Connection) -> int:
        claimed = conn.execute(t.update().where(
            (t.c.id == proposal_id) & (t.c.status == "pending")).values(
            status="published", moderator=user.key, decided_at=dt.datetime.now(dt.UTC),
            reason=_clip(comment, MAX_REASON))).rowcount
        if not claimed:
            raise ConflictError(f"La proposition n° {proposal_id} a déjà été traitée.")
        version = _publish_payload(conn, store, proposal.payload, kind=proposal.kind,
                                   author=proposal.author, moderator=user.key or "?",
                                   comment=_clip(comment or proposal.comment, MAX_REASON),
                                   base_version=proposal.base_version,
                                   proposal_id=proposal_id)
        conn.execute(t.update().where(t.c.id == proposal_id).values(published_version=version))
        store.audit(conn, user.key or "?", "publish", proposal.initiative_id,
                    f"proposition n° {proposal_id} de {proposal.author}, version {version}")
        return version

    return _run(store, "la publication", write)


def reject(store: Store, user: User, proposal_id: int, reason: str) -> None:
    """Reject a pending proposal with a reason the author will read (moderators)."""
    require(user, "moderateur")
    reason = _clip(reason, MAX_REASON) or ""
    if not reason:
        raise ValidationError([Problem("indiquez la raison du refus (l'auteur la lira)",
                                       column="reason")], summary="Refus non enregistré")
    t = store.t["proposals"]

    def write(conn: sa.Connection) -> None:
        row = conn.execute(sa.select(t.c.initiative_id, t.c.author).where(
            t.c.id == proposal_id)).first()
        done = conn.execute(t.update().where(
            (t.c.id == proposal_id) & (t.c.status == "pending")).values(
            status="rejected", reason=reason, moderator=user.key,
            decided_at=dt.datetime.now(dt.UTC))).rowcount
        if not done or row is None:
            raise ConflictError(f"La proposition n° {proposal_id} a déjà été traitée.")
        store.audit(conn, user.key or "?", "reject", row.initiative_id,
                    f"proposition n° {proposal_id} de {row.author} : {reason}")

    store.transaction("le refus", write)


def restore(store: Store, user: User, initiative_id: str, version: int, base_version: int, *,
            comment: str | None = None) -> int:
    """Publish version ``version`` of an initiative again, as a new version (moderators).
    ``base_version`` is the version the moderator was looking at (no lost update)."""
    require(user, "moderateur")
    found = [v for v in versions(store, initiative_id) if v.version == int(version)]
    if not found:
        raise TerritoiresError(f"Version {version} de « {initiative_id} » introuvable.")
    payload = found[0].payload
    note = _clip(comment, MAX_REASON) or f"restauration de la version {version}"

    def write(conn: sa.Connection) -> int:
        pid = _insert_proposal(conn, store, user, kind="restore", initiative_id=initiative_id,
                               payload=payload, base_version=int(base_version), comment=note,
                               status="published")
        new = _publish_payload(conn, store, payload, kind="restore", author=user.key or "?",
                               moderator=user.key or "?", comment=note,
                               base_version=int(base_version), proposal_id=pid)
        t = store.t["proposals"]
        conn.execute(t.update().where(t.c.id == pid).values(published_version=new))
        store.audit(conn, user.key or "?", "restore", initiative_id,
                    f"version {version} republiée en version {new}")
        return new

    return _run(store, "la restauration", write)


# ---------------------------------------------------------------------------- diff & path


def public_payload(payload: dict, include_private: bool) -> dict:
    """``payload`` without private fields unless ``include_private``."""
    if include_private:
        return payload
    return {**payload, "initiatives": [
        {k: v for k, v in row.items() if k not in model.PRIVATE_COLUMNS}
        for row in payload.get("initiatives", [])]}


def _show(col: str, value: Any) -> str:
    if value is None or value == [] or value == "":
        return "—"
    voc = _VOCAB_FIELDS.get(col)
    if isinstance(value, list):
        return ", ".join(voc.label_of(str(v)) if voc else str(v) for v in value)
    if voc:
        return voc.label_of(str(value))
    if col in ("start_date", "end_date"):
        try:
            return dt.date.fromisoformat(str(value)[:10]).strftime("%d/%m/%Y")
        except ValueError:
            return str(value)
    return str(value)


def row_text(table: str, row: Mapping[str, Any],
             territory_label: Callable[[str, str], str] | None = None) -> str:
    """One child row as plain French text (territories named by ``territory_label(level,
    code)`` when given, e.g. ``TerritoryIndex.label``)."""
    if table == "organisations":
        role = vocab.ORG_ROLES.label_of(str(row.get("role")))
        kind = vocab.ORG_TYPES.label_of(str(row.get("type")))
        siret = f", SIRET {row['siret']}" if row.get("siret") else ""
        return f"{row.get('name')} ({role}, {kind}{siret})"
    if table == "territories":
        if territory_label is not None:
            return territory_label(str(row.get("level")), str(row.get("code")))
        return f"{vocab.TERRITORY_LEVELS.label_of(str(row.get('level')))} {row.get('code')}"
    if table == "indicators":
        unit = f" {row['unit']}" if row.get("unit") else ""
        year = f" ({row['year']})" if row.get("year") else ""
        return f"{row.get('label')} : {_number(row.get('value'))}{unit}{year}"
    years = (f"{row.get('year_start')}" if row.get("year_end") in (None, row.get("year_start"))
             else f"{row.get('year_start')}-{row.get('year_end')}")
    return (f"{row.get('funder')} ({vocab.FUNDER_TYPES.label_of(str(row.get('funder_type')))}"
            f", {vocab.SCHEMES.label_of(str(row.get('scheme')))}) {years} : "
            f"{_number(row.get('amount_eur'))} €")


def _number(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    text = f"{number:,.2f}" if number != int(number) else f"{int(number):,}"
    return text.replace(",", "\u202f").replace(".", ",")


def diff(before: dict | None, after: dict, *, include_private: bool = False,
         territory_label: Callable[[str, str], str] | None = None) -> pd.DataFrame:
    """Field-by-field differences from ``before`` to ``after`` (payloads; ``before`` None for a
    new fiche): columns Partie, Champ, Avant, Après, plain text (show with st.dataframe)."""
    before = public_payload(before or {}, include_private)
    after = public_payload(after, include_private)
    rows: list[tuple[str, str, str, str]] = []
    old = (before.get("initiatives") or [{}])[0]
    new = (after.get("initiatives") or [{}])[0]
    for col in model.INITIATIVE_COLUMNS:
        if col in _IGNORED or col not in new:
            continue  # absent from ``after``: left as it is (a contributor's private fields)
        a, b = _show(col, old.get(col)), _show(col, new.get(col))
        if a != b:
            rows.append((TABLE_TITLES["initiatives"], FIELD_LABELS.get(col, col), a, b))
    for table in ("organisations", "territories", "indicators", "funding"):
        a = [row_text(table, r, territory_label) for r in before.get(table) or []]
        b = [row_text(table, r, territory_label) for r in after.get(table) or []]
        for text in a:
            if text not in b:
                rows.append((TABLE_TITLES[table], "ligne retirée", text, "—"))
        for text in b:
            if text not in a:
                rows.append((TABLE_TITLES[table], "ligne ajoutée", "—", text))
    return pd.DataFrame(rows, columns=["Partie", "Champ", "Avant", "Après"])


def mask_identity(key: str | None) -> str:
    """A person's key as shown publicly: ``a…@domaine.fr`` (the organisation's domain stays
    readable, the address does not); system authors (import, cli…) as they are."""
    if not key:
        return ""
    if "@" not in key:
        return "compte sans e-mail" if key.startswith("sub:") else key
    local, _, domain = key.partition("@")
    return f"{local[:1]}…@{domain}"


def history_table(history: list[Version], show_identities: bool = False) -> pd.DataFrame:
    """The versions as a French table (newest first); authors' and moderators' e-mails are
    masked unless ``show_identities`` (moderators)."""
    who = (lambda k: k or "") if show_identities else mask_identity
    rows = []
    for v in reversed(history):
        row = (v.payload.get("initiatives") or [{}])[0]
        rows.append({"Version": v.version, "Publiée le": v.published_at,
                     "Type": KIND_LABELS.get(v.kind, v.kind), "Auteur": who(v.author),
                     "Modérateur": who(v.moderator), "Maturité": _show("maturity",
                                                                       row.get("maturity")),
                     "Commentaire": v.comment or ""})
    return pd.DataFrame(rows, columns=["Version", "Publiée le", "Type", "Auteur", "Modérateur",
                                       "Maturité", "Commentaire"])


def maturity_path(history: list[Version]) -> pd.DataFrame:
    """The initiative's path through the maturity stages: one row per change of stage, with
    the date it was published (the first one also gives the fiche's start date)."""
    rows = []
    last = None
    for v in history:
        row = (v.payload.get("initiatives") or [{}])[0]
        stage = row.get("maturity")
        if stage == last:
            continue
        rows.append({"Étape": _show("maturity", stage), "Depuis le": v.published_at,
                     "Version": v.version, "code": stage})
        last = stage
    return pd.DataFrame(rows, columns=["Étape", "Depuis le", "Version", "code"])


def proposals_table(items: list[Proposal]) -> pd.DataFrame:
    """Proposals as a French table."""
    return pd.DataFrame([{
        "N°": p.id, "Fiche": p.title, "Type": KIND_LABELS.get(p.kind, p.kind),
        "Statut": STATUS_LABELS.get(p.status, p.status), "Déposée le": p.created_at,
        "Auteur": p.author_name or p.author, "Décision le": p.decided_at,
        "Raison / commentaire du modérateur": p.reason or "",
        "Version publiée": p.published_version,
    } for p in items], columns=["N°", "Fiche", "Type", "Statut", "Déposée le", "Auteur",
                                "Décision le", "Raison / commentaire du modérateur",
                                "Version publiée"])


def problems_by_field(problems: list[Problem]) -> dict[str, list[str]]:
    """French messages grouped by ``table.column`` (``table`` alone when no column), for
    showing them next to the fields of a form."""
    tables = {label: name for name, label in model.TABLE_LABELS.items()}
    out: dict[str, list[str]] = {}
    for p in problems:
        table = tables.get(p.sheet or "", p.sheet or "initiatives")
        key = f"{table}.{p.column}" if p.column else table
        line = (f"ligne {p.line - 1} : " if p.line is not None and table != "initiatives"
                else "")
        value = "" if p.value is None else f" (valeur : « {p.value} »)"
        out.setdefault(key, []).append(f"{line}{p.message}{value}")
    return out


def payload_json(payload: dict) -> str:
    """Readable JSON of a payload (for downloads and debugging)."""
    return json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True)


def submit_batch(store: Store, user: User,
                 items: list[tuple[model.Catalogue, int | None]], *,
                 comment: str | None = None, file: str | None = None) -> list[int]:
    """Proposals for several already validated initiatives (a contributor's import): one
    per ``(one-initiative catalogue, base version or None for a new fiche)``, all recorded in
    one transaction or none. Refused if a fiche changed since its base version, or breaks
    the rules of a proposal typed in the form (its bounds included; problems located in the
    file ``file``, at the lines of the catalogues' index when they come from a file)."""
    require(user, "contributeur")
    problems: list[Problem] = []
    payloads: list[tuple[dict, int | None]] = []
    for catalogue, base in items:
        problems += validation.validate(catalogue, None, file=file)
        payload = catalogue_payload(catalogue)
        if len(dump_payload(payload).encode("utf-8")) > MAX_PAYLOAD_BYTES:
            ini = catalogue.initiatives
            problems.append(Problem(f"fiche trop volumineuse (plus de "
                                    f"{MAX_PAYLOAD_BYTES // 1000} ko)", file=file,
                                    sheet=ini.attrs.get("sheet") or "initiatives",
                                    line=validation._lines(ini)[0], column="id",
                                    value=payload["initiatives"][0]["id"]))
        if base is not None and not user.at_least("moderateur"):
            row = payload["initiatives"][0]
            for col in model.PRIVATE_COLUMNS:
                if row.get(col) is None:
                    row.pop(col, None)  # left empty: the published value is kept
        payloads.append((payload, base))
    if problems:
        raise ValidationError(validation.capped(problems, file),
                              summary="Propositions refusées ; rien n'a été écrit")

    def write(conn: sa.Connection) -> list[int]:
        ids = []
        for payload, base in payloads:
            iid = payload["initiatives"][0]["id"]
            current = store.current_version(conn, iid)
            if current != base:
                raise _stale(iid, base, current)
            ids.append(_insert_proposal(conn, store, user, kind="new" if base is None else "edit",
                                        initiative_id=iid, payload=payload, base_version=base,
                                        comment=comment, status="pending"))
        store.audit(conn, user.key or "?", "propose_import", None,
                    f"{len(ids)} proposition(s)")
        return ids

    return _run(store, "l'enregistrement des propositions", write)

"""Error reports: open to everyone, bounded, closed by moderators only (SQLite and
PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from catalogue_factory import initiative, make_catalogue
from territoires.analysis import views
from territoires.catalogue import auth, reports
from territoires.catalogue.auth import CLI_USER, User
from territoires.catalogue.storage import Store
from territoires.errors import ConflictError, PermissionDeniedError, ValidationError

MOD = User(key="mod@ex.org", role="moderateur")
CONTRIB = User(key="alice@ex.org", role="contributeur")
MESSAGE = "Le porteur a changé de nom en 2026."


@pytest.fixture
def store(store_factory) -> Store:
    s = store_factory()
    s.create_or_upgrade()
    s.upsert(make_catalogue([initiative("cenon-culture", [("commune", "33119")],
                                        title="Culture à Cenon")], []))
    auth.grant(s, CLI_USER, MOD.key, "moderateur")
    return s


def _count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(
            store.t["error_reports"])).scalar() or 0)


def test_anyone_reports_and_a_moderator_closes(store: Store) -> None:
    n = reports.submit(store, "cenon-culture", MESSAGE, session_id="s1",
                       email=" Lecteur@Ex.org ")
    assert n >= 1
    assert reports.open_count(store, MOD) == 1
    (item,) = reports.list_reports(store, MOD)
    assert (item.initiative_id, item.message, item.email, item.status) == (
        "cenon-culture", MESSAGE, "lecteur@ex.org", "open")
    # the session id itself is never stored
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(store.t["error_reports"].c.session_hash)).scalar()
    assert stored == reports.session_hash("s1") and stored != "s1"
    reports.close(store, MOD, item.id, "Nom du porteur corrigé.")
    assert reports.open_count(store, MOD) == 0
    (closed,) = reports.list_reports(store, MOD, status=None)
    assert (closed.status, closed.closed_by, closed.note) == ("closed", MOD.key,
                                                              "Nom du porteur corrigé.")
    # closing twice is refused, nothing overwritten
    with pytest.raises(ConflictError):
        reports.close(store, MOD, item.id, "autre note")
    assert reports.list_reports(store, MOD, status=None)[0].note == "Nom du porteur corrigé."
    table = views.reports_table(reports.list_reports(store, MOD, status=None),
                                  {"cenon-culture": "Culture à Cenon"})
    assert table.loc[0, "Fiche"] == "Culture à Cenon (cenon-culture)"
    assert table.loc[0, "État"].startswith("clos")


@pytest.mark.parametrize("who", [auth.ANONYMOUS, CONTRIB])
def test_reading_and_closing_need_a_moderator(store: Store, who: User) -> None:
    n = reports.submit(store, "cenon-culture", MESSAGE, session_id="s1")
    with pytest.raises(PermissionDeniedError):
        reports.list_reports(store, who)
    with pytest.raises(PermissionDeniedError):
        reports.open_count(store, who)
    with pytest.raises(PermissionDeniedError):
        reports.close(store, who, n, "fermé")
    assert reports.list_reports(store, MOD)[0].status == "open"


@pytest.mark.parametrize(("initiative_id", "message", "email", "column"), [
    ("cenon-culture", "court", None, "message"),
    ("cenon-culture", "x" * (reports.MAX_MESSAGE + 1), None, "message"),
    ("cenon-culture", MESSAGE, "pas-un-mail", "email"),
    ("inconnue", MESSAGE, None, "initiative_id"),
])
def test_refusals_write_nothing(store: Store, initiative_id: str, message: str,
                                email: str | None, column: str) -> None:
    with pytest.raises(ValidationError) as err:
        reports.submit(store, initiative_id, message, session_id="s1", email=email)
    assert err.value.problems[0].column == column
    assert _count(store) == 0


def test_a_session_cannot_flood(store: Store) -> None:
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    for i in range(reports.MAX_PER_SESSION):
        reports.submit(store, "cenon-culture", f"{MESSAGE} ({i})", session_id="s1", now=now)
    with pytest.raises(reports.RateLimitedError, match="Réessayez plus tard"):
        reports.submit(store, "cenon-culture", MESSAGE, session_id="s1", now=now)
    # another session may still report; the first one again after the window
    reports.submit(store, "cenon-culture", MESSAGE, session_id="s2", now=now)
    later = now + reports.SESSION_WINDOW + dt.timedelta(minutes=1)
    reports.submit(store, "cenon-culture", MESSAGE, session_id="s1", now=later)
    assert _count(store) == reports.MAX_PER_SESSION + 2


def test_the_site_caps_reports_per_hour(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "MAX_PER_HOUR", 4)
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    for i in range(4):
        reports.submit(store, "cenon-culture", MESSAGE, session_id=f"s{i}", now=now)
    with pytest.raises(reports.RateLimitedError, match="Trop de signalements"):
        reports.submit(store, "cenon-culture", MESSAGE, session_id="fresh", now=now)
    assert _count(store) == 4

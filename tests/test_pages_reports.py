"""AppTest runs of "Signaler une erreur" (Fiche) and of the moderators' Signalements page."""

from __future__ import annotations

import pytest

from territoires.app import report_forms
from territoires.catalogue import auth, reports
from test_pages_contribution import XSS, _app, _run, assert_no_markup
from test_pages_contribution import env as contribution_env  # noqa: F401 (the env fixture)

MOD = auth.User("mod@ex.org", "moderateur")


@pytest.fixture
def store(request: pytest.FixtureRequest):
    """The Contribution pages' test environment (tiny layers, users with roles)."""
    return request.getfixturevalue("contribution_env")


def _send(at, message: str, email: str = ""):
    assert not at.text_area  # the form is drawn once its expander is opened
    at.session_state[report_forms.REPORT_KEY] = True
    at = _run(at)
    form_area = next(t for t in at.text_area if t.label.startswith("Ce qui est inexact"))
    form_area.input(message)
    next(t for t in at.text_input if t.label.startswith("Votre e-mail")).input(email)
    return _run(next(b for b in at.button if b.label == "Envoyer le signalement").click())


def test_anyone_reports_from_the_fiche_moderator_closes(store) -> None:
    at = _run(_app(signin=False, page="pages/fiche.py", params={"id": "pau-sport"}))
    at = _send(at, f"Erreur de date {XSS}", "lecteur@ex.org")
    assert any("transmis aux modérateurs" in s.value for s in at.success)
    (item,) = reports.list_reports(store, MOD)
    assert item.message == f"Erreur de date {XSS}" and item.initiative_id == "pau-sport"

    # readers never see the e-mail; the moderator's sidebar counts the open report
    anon = _run(_app(page="pages/fiche.py", params={"id": "pau-sport"}))
    assert not any("lecteur@ex.org" in str(e.value) for e in anon.get("text"))
    mod = _run(_app("mod", "pages/signalements.py"))
    assert any("Signalements ouverts : 1" in str(p.label) for p in mod.get("page_link"))
    table = mod.dataframe[0].value
    assert table.loc[0, "Message"] == f"Erreur de date {XSS}"
    assert table.loc[0, "E-mail (privé)"] == "lecteur@ex.org"
    assert_no_markup(mod)
    mod.text_area(key="sg_note").input("Date corrigée")
    mod = _run(mod.button(key="sg_close").click())
    assert any("clos" in s.value for s in mod.success)
    assert reports.open_count(store, MOD) == 0


def test_refused_report_says_why(store) -> None:
    at = _run(_app(signin=False, page="pages/fiche.py", params={"id": "pau-sport"}))
    at = _send(at, "court")
    assert any("au moins" in e.value for e in at.error)
    assert reports.list_reports(store, MOD, status=None) == []


def test_signalements_page_needs_a_moderator(store) -> None:
    at = _run(_app("alice", "pages/signalements.py"))
    assert not at.dataframe
    assert not any("Signalements ouverts" in str(p.label) for p in at.get("page_link"))

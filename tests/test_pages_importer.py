"""AppTest runs of the Importer page: upload, validation report, confirmation by role."""

from __future__ import annotations

import io

import openpyxl
import pytest
from streamlit.testing.v1 import AppTest

from territoires.catalogue import auth, export, importing, moderation
from test_pages_contribution import _app, _run, assert_no_markup
from test_pages_contribution import env as contribution_env  # noqa: F401 (the env fixture)

MOD = auth.User("mod@ex.org", "moderateur")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NASTY_NAME = '<img src=x onerror=alert(1)>[lien](http://x.test).xlsx'


@pytest.fixture
def store(request: pytest.FixtureRequest):
    """The Contribution pages' test environment (tiny layers, users with roles)."""
    return request.getfixturevalue("contribution_env")


def _workbook(store, title: str = "Sport à Pau, nouvelle saison", amount: object = None
              ) -> bytes:
    own = store.load_catalogue(include_national=False)
    wb = openpyxl.load_workbook(io.BytesIO(export.export_bytes(own, "xlsx")))
    ws = wb["initiatives"]
    head = [c.value for c in ws[1]]
    row = next(r for r in range(2, ws.max_row + 1)
               if ws.cell(r, head.index("id") + 1).value == "pau-sport")
    ws.cell(row, head.index("title") + 1, title)
    if amount is not None:
        fund = wb["financements"]
        fhead = [c.value for c in fund[1]]
        fund.cell(2, fhead.index("amount_eur") + 1, amount)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _upload(at, name: str, content: bytes):
    at.file_uploader[0].upload(name, content, XLSX)
    return _run(at)


def test_contributor_import_waits_for_moderation(store) -> None:
    at = _run(_app("alice", "pages/importer.py"))
    assert at.get("download_button")  # the empty template
    at = _upload(at, NASTY_NAME, _workbook(store))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Fiches modifiées"] == "1" and metrics["Fiches ajoutées"] == "0"
    assert_no_markup(at)
    at = _run(at.button(key="imp_confirm").click())
    assert any("1 proposition déposée" in s.value for s in at.success), [
        s.value for s in at.success]
    assert_no_markup(at)
    assert [p.initiative_id for p in moderation.queue(store, MOD)] == ["pau-sport"]
    titles = store.load_catalogue().initiatives.set_index("id")["title"]
    assert titles["pau-sport"] == "Sport à Pau"  # not published yet


def test_moderator_import_is_published(store) -> None:
    at = _upload(_run(_app("mod", "pages/importer.py")), "lot.xlsx", _workbook(store))
    at = _run(at.button(key="imp_confirm").click())
    assert any("publié" in s.value for s in at.success)
    titles = store.load_catalogue().initiatives.set_index("id")["title"]
    assert titles["pau-sport"] == "Sport à Pau, nouvelle saison"


def test_invalid_file_shows_the_report_and_no_button(store) -> None:
    at = _upload(_run(_app("mod", "pages/importer.py")), "faux.xlsx",
                 _workbook(store, amount="beaucoup"))
    assert at.error and "impossible" in at.error[0].value
    report = at.dataframe[-1].value
    assert list(report.columns) == ["Fichier", "Feuille", "Ligne", "Colonne", "Valeur",
                                    "Message"]
    assert "amount_eur" in set(report["Colonne"])
    assert not [b for b in at.button if b.key == "imp_confirm"]
    at = _upload(_run(_app("mod", "pages/importer.py")), "pas-un-classeur.xlsx", b"PK\x03\x04")
    assert at.error and at.dataframe[-1].value.iloc[0]["Fichier"] == "pas-un-classeur.xlsx"


def test_importer_needs_sign_in(store) -> None:
    at = _run(_app(page="pages/importer.py"))
    assert any("Connectez-vous" in i.value for i in at.info)
    assert not at.file_uploader


def test_too_large_file_named_with_markup_is_refused_as_text(
        store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal repeats the upload's name: it is shown as text (it was Markdown)."""
    monkeypatch.setattr(importing, "MAX_UPLOAD_BYTES", 10)
    at = _upload(_run(_app("mod", "pages/importer.py")),
                 ":material/warning: " + NASTY_NAME, _workbook(store))
    assert at.error and "pèse" in at.error[0].value
    assert_no_markup(at)
    assert ":material/" not in at.error[0].value


def test_progress_text_naming_the_file_is_text() -> None:
    def page() -> None:
        from territoires.app import import_forms

        import_forms._progress_bar()(0.1, "Lecture de « ![x](https://e.test/p.png) »…")

    at = AppTest.from_function(page).run()
    text = at.get("progress")[0].proto.text
    assert "![x](https://" not in text and "\\!\\[x\\]" in text


def test_import_refused_for_a_conflict_is_checked_again(
        store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fiche published between the check and « Publier »: refused, then the file is checked
    again against the new version (the old plan stayed, and « Publier » failed again)."""
    at = _upload(_run(_app("mod", "pages/importer.py")), "lot.xlsx", _workbook(store))
    calls: list[str] = []
    real = importing.plan_import

    def counted(*args, **kwargs):
        calls.append("plan")
        return real(*args, **kwargs)

    monkeypatch.setattr(importing, "plan_import", counted)
    edited = store.load_catalogue(include_national=False).subset(["pau-sport"])
    edited.initiatives["summary"] = "Publiée entre-temps."
    store.upsert(edited, author="mod2@ex.org")
    at = _run(at.button(key="imp_confirm").click())
    assert any("relancez la vérification" in e.value for e in at.error), [
        e.value for e in at.error]
    assert calls == ["plan"]  # the same upload, checked again

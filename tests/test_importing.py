"""One import path (command line and Importer page): plan without writing, apply by role."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from catalogue_factory import funding_line, initiative, make_catalogue
from territoires.analysis import views
from territoires.catalogue import auth, catalogue_ops, importing, moderation
from territoires.catalogue.auth import CLI_USER, User
from territoires.catalogue.storage import Store
from territoires.errors import ConflictError, ImportRefusedError, PermissionDeniedError

MOD = User(key="mod@ex.org", role="moderateur")
CONTRIB = User(key="alice@ex.org", role="contributeur")


def _catalogue():
    return make_catalogue(
        [initiative("cenon-culture", [("commune", "33119")], title="Culture à Cenon"),
         initiative("pau-sport", [("commune", "64445")], title="Sport à Pau")],
        [funding_line("f-cenon", 10_000, "commune", "33119", initiative_id="cenon-culture")])


@pytest.fixture
def store(store_factory) -> Store:
    s = store_factory()
    s.create_or_upgrade()
    s.upsert(_catalogue())
    return s


def _workbook(store: Store, tmp_path: Path, *, new: bool = True, unattached: bool = False,
              bad: bool = False) -> Path:
    """The store's own export with the first title changed, plus a new fiche (and, on
    demand, an unattached funding line or a bad value)."""
    path = tmp_path / "lot.xlsx"
    url = store.url if store.schema is None else None
    if url is None:  # PostgreSQL schema of the test: export through the catalogue itself
        from territoires.catalogue import export
        path.write_bytes(export.export_bytes(store.load_catalogue(), "xlsx"))
    else:
        catalogue_ops.export_file(path, url)
    wb = openpyxl.load_workbook(path)
    ws = wb["initiatives"]
    head = [c.value for c in ws[1]]
    ws.cell(2, head.index("title") + 1, "Culture à Cenon (nouveau titre)")
    if new:
        row = ws.max_row + 1
        for col, value in {"id": "lormont-lecture", "title": "Lecture à Lormont",
                           "themes": "culture", "maturity": "emergence"}.items():
            ws.cell(row, head.index(col) + 1, value)
        terr = wb["territoires"]
        thead = [c.value for c in terr[1]]
        trow = terr.max_row + 1
        for col, value in {"initiative_id": "lormont-lecture", "level": "commune",
                           "code": "33249"}.items():
            terr.cell(trow, thead.index(col) + 1, value)
    if unattached or bad:
        fund = wb["financements"]
        fhead = [c.value for c in fund[1]]
        frow = fund.max_row + 1
        for col, value in {"id": "f-libre", "funder": "Ville", "funder_type": "collectivite",
                           "scheme": "droit_commun", "amount_eur": -5 if bad else 500,
                           "year_start": 2025, "territory_level": "commune",
                           "territory_code": "33119"}.items():
            fund.cell(frow, fhead.index(col) + 1, value)
    wb.save(path)
    return path


def _titles(store: Store) -> dict[str, str]:
    ini = store.load_catalogue().initiatives
    return dict(zip(ini["id"], ini["title"], strict=True))


def test_plan_compares_without_writing(store: Store, tmp_path: Path) -> None:
    before = _titles(store)
    revision = store.revision()
    plan = importing.plan_import(_workbook(store, tmp_path), store, None, file_name="lot.xlsx")
    assert plan.ok, plan.problems
    assert plan.report.added_ids == ["lormont-lecture"]
    assert plan.report.changed_versions == {"cenon-culture": 1}
    assert (plan.report.inserted, plan.report.updated, plan.report.unchanged) == (1, 1, 1)
    assert plan.report.funding_replaced == 1
    assert "est valide" in plan.summary()
    assert _titles(store) == before and store.revision() == revision


def test_problems_are_a_table_and_nothing_is_written(store: Store, tmp_path: Path) -> None:
    plan = importing.plan_import(_workbook(store, tmp_path, bad=True), store, None,
                                 file_name="envoi.xlsx")
    assert not plan.ok
    table = views.problems_table(plan.problems)
    assert list(table.columns) == ["Fichier", "Feuille", "Ligne", "Colonne", "Valeur",
                                   "Message"]
    row = table[table["Colonne"] == "amount_eur"].iloc[0]
    assert (row["Fichier"], row["Feuille"]) == ("envoi.xlsx", "financements")
    assert row["Valeur"].startswith("-5") and row["Ligne"] == 3
    with pytest.raises(ImportRefusedError):
        importing.apply_import(store, MOD, plan)
    assert "f-libre" not in set(store.load_catalogue().funding["id"])


def test_anonymous_cannot_import(store: Store, tmp_path: Path) -> None:
    plan = importing.plan_import(_workbook(store, tmp_path), store, None)
    before = _titles(store)
    with pytest.raises(PermissionDeniedError):
        importing.apply_import(store, auth.ANONYMOUS, plan)
    assert _titles(store) == before
    assert moderation.queue(store, MOD) == []


def test_moderator_import_is_published_at_once(store: Store, tmp_path: Path) -> None:
    plan = importing.plan_import(_workbook(store, tmp_path), store, None)
    message = importing.apply_import(store, MOD, plan, comment="lot de décembre")
    assert "publié" in message
    titles = _titles(store)
    assert titles["cenon-culture"] == "Culture à Cenon (nouveau titre)"
    assert titles["lormont-lecture"] == "Lecture à Lormont"
    history = moderation.versions(store, "cenon-culture")
    assert history[-1].version == 2 and history[-1].author == MOD.key


def test_contributor_import_becomes_one_proposal_per_fiche(store: Store,
                                                           tmp_path: Path) -> None:
    plan = importing.plan_import(_workbook(store, tmp_path), store, None)
    before = _titles(store)
    message = importing.apply_import(store, CONTRIB, plan)
    assert "2 propositions déposées" in message
    assert _titles(store) == before  # nothing published yet
    pending = {p.initiative_id: p for p in moderation.queue(store, MOD)}
    assert set(pending) == {"cenon-culture", "lormont-lecture"}
    assert (pending["cenon-culture"].kind, pending["cenon-culture"].base_version) == ("edit", 1)
    assert (pending["lormont-lecture"].kind, pending["lormont-lecture"].base_version) == (
        "new", None)
    moderation.publish(store, MOD, pending["cenon-culture"].id)
    assert _titles(store)["cenon-culture"] == "Culture à Cenon (nouveau titre)"


def test_contributor_cannot_import_unattached_funding(store: Store, tmp_path: Path) -> None:
    plan = importing.plan_import(_workbook(store, tmp_path, unattached=True), store, None)
    assert plan.ok
    with pytest.raises(ImportRefusedError, match="rien n'a été écrit"):
        importing.apply_import(store, CONTRIB, plan)
    assert moderation.queue(store, MOD) == []


def test_stale_plan_is_refused_whole(store: Store, tmp_path: Path) -> None:
    plan = importing.plan_import(_workbook(store, tmp_path), store, None)
    # meanwhile a moderator publishes another version of the same fiche
    changed = _catalogue().subset(["cenon-culture"])
    changed.initiatives.loc[changed.initiatives.index[0], "title"] = "Titre du modérateur"
    store.upsert(changed, author=CLI_USER.key)
    with pytest.raises(ConflictError):
        importing.apply_import(store, CONTRIB, plan)
    assert moderation.queue(store, MOD) == []  # not even the new fiche: all or nothing


def test_streamlit_upload_limit_is_the_importers() -> None:
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml")
                           .read_text(encoding="utf-8"))
    assert config["server"]["maxUploadSize"] * 1024 * 1024 == importing.MAX_UPLOAD_BYTES


# ------------------------------------------------- no lost update between check and write

OTHER = User(key="bob@ex.org", role="moderateur")


def _publish_edit(store: Store, iid: str, title: str) -> int:
    """Another moderator publishes a new title for ``iid`` in the app; the new version."""
    _payload, version = moderation.published(store, iid)
    fiche = store.load_catalogue().subset([iid])
    fiche.initiatives.loc[fiche.initiatives.index[0], "title"] = title
    submission = moderation.submit_edit(store, OTHER, fiche, version)
    assert submission.version is not None
    return submission.version


def _history(store: Store, iid: str) -> list[tuple[int, str, str]]:
    return [(v.version, v.author, v.payload["initiatives"][0]["title"])
            for v in moderation.versions(store, iid)]


def test_moderator_import_refused_if_a_changed_fiche_was_published_since(
        store: Store, tmp_path: Path) -> None:
    plan = importing.plan_import(_workbook(store, tmp_path), store, None, file_name="lot.xlsx")
    assert plan.report.changed_versions == {"cenon-culture": 1}
    assert _publish_edit(store, "cenon-culture", "Titre de Bob") == 2
    before, history, revision = _titles(store), _history(store, "cenon-culture"), \
        store.revision()
    with pytest.raises(ConflictError) as exc:
        importing.apply_import(store, MOD, plan)
    message = str(exc.value)
    assert "« lot.xlsx »" in message and "« cenon-culture »" in message
    assert "modifiée depuis la vérification du fichier : relancez la vérification" in message
    assert "Rien n'a été écrit" in message
    # nothing written: Bob's version stays the last one, the new fiche was not added either
    assert _titles(store) == before and "lormont-lecture" not in before
    assert _history(store, "cenon-culture") == history == [
        (1, "import", "Culture à Cenon"), (2, OTHER.key, "Titre de Bob")]
    assert store.revision() == revision
    # checked again, the file (exported at version 1) is now a stale export: refused too
    again = importing.plan_import(tmp_path / "lot.xlsx", store, None)
    assert not again.ok
    (problem,) = again.problems
    assert (problem.file, problem.sheet, problem.line, problem.column, problem.value) == (
        "lot.xlsx", "initiatives", 2, "version", 1)
    assert "cenon-culture" in problem.message and "version 2" in problem.message


def test_moderator_import_refused_if_an_unchanged_fiche_was_published_since(
        store: Store, tmp_path: Path) -> None:
    """A fiche found unchanged when checked, edited since: writing the file would revert it."""
    plan = importing.plan_import(_workbook(store, tmp_path), store, None)
    assert plan.report.unchanged_versions == {"pau-sport": 1}
    _publish_edit(store, "pau-sport", "Sport à Pau, corrigé")
    with pytest.raises(ConflictError, match="« pau-sport »"):
        importing.apply_import(store, MOD, plan)
    assert _titles(store)["pau-sport"] == "Sport à Pau, corrigé"
    assert _titles(store)["cenon-culture"] == "Culture à Cenon"


def test_moderator_import_refused_if_a_new_fiche_was_published_since(
        store: Store, tmp_path: Path) -> None:
    plan = importing.plan_import(_workbook(store, tmp_path), store, None)
    assert plan.report.added_ids == ["lormont-lecture"]
    mine = make_catalogue([initiative("lormont-lecture", [("commune", "33249")],
                                      title="Lecture à Lormont, par Bob")])
    moderation.submit_new(store, OTHER, mine)
    with pytest.raises(ConflictError, match="publiée entre-temps en version 1"):
        importing.apply_import(store, MOD, plan)
    assert _titles(store)["lormont-lecture"] == "Lecture à Lormont, par Bob"
    assert [v.author for v in moderation.versions(store, "lormont-lecture")] == [OTHER.key]


def test_stale_export_is_refused_when_checked(store: Store, tmp_path: Path) -> None:
    """A file exported before a fiche's last publication would revert it: refused with the
    file, sheet, line, column « version » and value; the other fiches are not in question."""
    path = _workbook(store, tmp_path, new=False)  # exported at version 1, Cenon's title edited
    _publish_edit(store, "pau-sport", "Sport à Pau, corrigé")
    for user in (MOD, CONTRIB):
        plan = importing.plan_import(path, store, None, file_name="vieux.xlsx")
        assert not plan.ok and plan.report is None
        (problem,) = plan.problems
        assert (problem.file, problem.sheet, problem.line, problem.column, problem.value) == (
            "vieux.xlsx", "initiatives", 3, "version", 1)
        assert "« pau-sport » exportée en version 1" in str(problem)
        with pytest.raises(ImportRefusedError):
            importing.apply_import(store, user, plan)
    assert _titles(store)["pau-sport"] == "Sport à Pau, corrigé"
    assert moderation.queue(store, MOD) == []
    # the same file with its version cells emptied (not an export) is compared as before
    wb = openpyxl.load_workbook(path)
    ws = wb["initiatives"]
    col = [c.value for c in ws[1]].index("version") + 1
    for row in range(2, ws.max_row + 1):
        ws.cell(row, col).value = None
    wb.save(path)
    assert importing.plan_import(path, store, None).ok

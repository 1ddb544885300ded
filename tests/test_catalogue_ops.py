"""Tests of the catalogue operations through the CLI (territoires.cli.main) on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from territoires.catalogue import catalogue_ops, model
from territoires.catalogue.storage import Store
from territoires.cli import main
from territoires.pipeline.layers import LAYER_SCHEMAS, LEVEL_LAYER, Layers
from test_storage import sample_catalogue


@pytest.fixture
def engine_store(store_factory):
    """A fresh store on SQLite or PostgreSQL (see conftest's ``store_factory``)."""
    return store_factory()


class LayerIndex:
    """Stand-in for TerritoryIndex (exists/name) over the tiny layers."""

    def __init__(self, layers: Layers) -> None:
        self.codes = {(level, str(code)): nom for level, name in LEVEL_LAYER.items()
                      for code, nom in zip(layers.layer(name)[LAYER_SCHEMAS[name][0]],
                                           layers.layer(name)["nom"], strict=True)}

    def exists(self, level: str, code: str) -> bool:
        return (level, code) in self.codes

    def name(self, level: str, code: str) -> str:
        return self.codes.get((level, code), code)


@pytest.fixture
def with_index(monkeypatch: pytest.MonkeyPatch, tiny_layers: Layers) -> None:
    index = LayerIndex(tiny_layers)
    monkeypatch.setattr(catalogue_ops, "_territory_index", lambda: (tiny_layers, index, None))


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'cat.sqlite'}"


def _sample_without_national() -> model.Catalogue:
    cat = sample_catalogue()
    cat.funding = cat.funding[cat.funding["source"].fillna("") != "national:adulte-relais-2024"]
    return cat


@pytest.fixture
def seeded(url: str, monkeypatch: pytest.MonkeyPatch, with_index: None, tmp_path: Path) -> str:
    import territoires.catalogue.seeds

    monkeypatch.setattr(territoires.catalogue.seeds,
                        "load_seed_dir", lambda path: _sample_without_national())
    assert main(["catalogue", "seed", "--db", url, "--seeds", str(tmp_path)]) == 0
    return url


def _snapshot(url: str) -> dict:
    store = Store(url)
    cat = store.load_catalogue()
    store.dispose()
    return {name: df.astype(object).to_json(date_format="iso", default_handler=str)
            for name, df in cat.tables().items()}


def test_seed_idempotent(seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = _snapshot(seeded)
    capsys.readouterr()
    assert main(["catalogue", "seed", "--db", seeded, "--seeds", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 ajoutée(s), 2 déjà présente(s) laissée(s) telle(s) quelle(s)" in out
    assert "diffère" not in out
    assert _snapshot(seeded) == before


def test_seed_again_keeps_what_was_edited_in_the_app(seeded: str, tmp_path: Path) -> None:
    """Re-running the seed (as ``territoires setup`` does) never reverts a fiche published
    since in the app: it is left as it is, and the summary names it; a missing fiche (and
    its funding lines) is added again."""
    from territoires.catalogue import moderation
    from territoires.catalogue.auth import User

    store = Store(seeded)
    _payload, version = moderation.published(store, "cite-cenon")
    fiche = store.load_catalogue().subset(["cite-cenon"])
    fiche.initiatives.loc[fiche.initiatives.index[0], "summary"] = "Corrigé par un modérateur"
    moderation.submit_edit(store, User(key="m@ex.org", role="moderateur"), fiche, version)
    assert store.delete_initiatives(["mireuil"]) == 1
    history = [(v.version, v.author) for v in moderation.versions(store, "cite-cenon")]
    out = catalogue_ops.seed(tmp_path, seeded)
    assert "Initiatives : 1 ajoutée(s), 1 déjà présente(s) laissée(s) telle(s) quelle(s)" in out
    assert "1 fiche(s) déjà présente(s) diffère(nt) de leur fichier" in out
    assert "« cite-cenon »" in out
    ini = store.load_catalogue().initiatives.set_index("id")
    assert ini.loc["cite-cenon", "summary"] == "Corrigé par un modérateur"
    assert int(ini.loc["cite-cenon", "version"]) == 2
    assert [(v.version, v.author) for v in moderation.versions(store, "cite-cenon")] == (
        history) == [(1, "import"), (2, "m@ex.org")]
    assert "mireuil" in ini.index
    again = catalogue_ops.seed(tmp_path, seeded)
    assert "0 ajoutée(s), 2 déjà présente(s)" in again and "« cite-cenon »" in again
    assert store.load_catalogue().initiatives.set_index("id").loc[
        "cite-cenon", "summary"] == "Corrigé par un modérateur"
    store.dispose()


def test_seed_warns_without_layers(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    import territoires.catalogue.seeds

    monkeypatch.setenv("TERRITOIRES_GEO_DIR", str(tmp_path / "nogeo"))
    monkeypatch.setattr(territoires.catalogue.seeds,
                        "load_seed_dir", lambda path: _sample_without_national())
    assert main(["catalogue", "seed", "--db", url, "--seeds", str(tmp_path)]) == 0
    assert "non vérifiés" in capsys.readouterr().out


def test_import_refused_leaves_db_unchanged(seeded: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    before = _snapshot(seeded)
    bad = tmp_path / "bad.xlsx"
    catalogue_ops.export_file(tmp_path / "good.xlsx", seeded)
    wb = openpyxl.load_workbook(tmp_path / "good.xlsx")
    wb["initiatives"]["B2"] = "Titre modifié"  # a valid change…
    wb["territoires"].append(["cite-cenon", "commune", "99999"])  # …and two errors
    wb["financements"].append(["f-9", "X", "etat", "autre", -1, 2024, 2024, None, None,
                               "commune", "33063", None, None])
    wb.save(bad)
    capsys.readouterr()
    assert main(["catalogue", "import", "--db", seeded, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Import de « bad.xlsx » refusé : 2 problèmes ; rien n'a été écrit" in err
    assert "feuille « territoires », ligne 5, colonne « code »" in err
    assert "« 99999 »" in err
    assert "feuille « financements », ligne 4, colonne « amount_eur »" in err
    assert _snapshot(seeded) == before


def test_dry_run_writes_nothing(seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                               url: str) -> None:
    path = tmp_path / "e.xlsx"
    catalogue_ops.export_file(path, seeded)
    wb = openpyxl.load_workbook(path)
    wb["initiatives"]["B2"] = "Titre modifié"
    wb.save(path)
    before = _snapshot(seeded)
    capsys.readouterr()
    assert main(["catalogue", "import", "--dry-run", "--db", seeded, str(path)]) == 0
    assert "Rien n'a été écrit" in capsys.readouterr().out
    assert _snapshot(seeded) == before
    fresh = tmp_path / "fresh" / "x.sqlite"
    assert main(["catalogue", "import", "--dry-run", "--db", f"sqlite:///{fresh}",
                 str(path)]) == 0
    assert not fresh.exists()
    # the real import applies the change and bumps the version
    assert main(["catalogue", "import", "--db", seeded, str(path)]) == 0
    ini = Store(seeded).load_catalogue().initiatives.set_index("id")
    assert ini.loc["cite-cenon", "title"] == "Titre modifié"
    assert ini.loc["cite-cenon", "version"] == 2


@pytest.mark.parametrize("name", ["export.xlsx", "export.zip", "dossier_csv"])
def test_export_import_round_trip(seeded: str, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert main(["catalogue", "export", "--db", seeded, "--with-emails", str(path)]) == 0
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert main(["catalogue", "import", "--db", other, str(path)]) == 0
    assert _snapshot(other) == _snapshot(seeded)


def test_export_drops_emails_by_default(seeded: str, tmp_path: Path) -> None:
    path = tmp_path / "e.xlsx"
    assert main(["catalogue", "export", "--db", seeded, str(path)]) == 0
    values = [c.value for row in openpyxl.load_workbook(path)["initiatives"].iter_rows()
              for c in row]
    assert "x@example.org" not in values


def test_export_geojson(seeded: str, tmp_path: Path) -> None:
    path = tmp_path / "e.geojson"
    assert main(["catalogue", "export", "--db", seeded, str(path)]) == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    assert len(data["features"]) == 3
    assert main(["catalogue", "export", "--db", seeded, str(tmp_path / "x.pdf")]) == 2


def test_template_cli(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    assert main(["catalogue", "template", str(path)]) == 0
    assert "lisez-moi" in openpyxl.load_workbook(path).sheetnames


def test_load_funding(seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERRITOIRES_CACHE", str(tmp_path / "cache"))
    mirror = tmp_path / "mirror"
    folder = mirror / "funding" / "ci-ville2"
    folder.mkdir(parents=True)
    (folder / "adulte-relais-2024.json").write_text(json.dumps([
        {"id_poste": "P1", "code_tiers": "12345678901234", "raison_sociale": "A",
         "annee": 2024, "montant": 1000.5, "code_cv": "CN03301I", "insee_dep": "33"},
        {"id_poste": "P2", "code_tiers": "x", "raison_sociale": "B",
         "annee": 2024, "montant": 10, "insee_dep": "33"},
    ]), encoding="utf-8")
    capsys.readouterr()
    assert main(["catalogue", "load-funding", "--db", seeded, "--mirror", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert "2 lignes" in out and "1 rattachées au département" in out
    assert "2024 : Adultes-relais 1\u202f010 € (2 postes)" in out
    store = Store(seeded)
    counts = store.counts()
    assert counts["funding_national"] == 2
    assert counts["funding"] == 4  # two lines of the initiatives kept
    again = catalogue_ops.load_funding(seeded, mirror, only_if_empty=True)
    assert "déjà chargés" in again
    assert store.counts()["funding_national"] == 2
    assert len(catalogue_ops.open_catalogue(seeded, include_national=False).funding) == 2
    store.dispose()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["catalogue", "load-funding", "--db", seeded, "--mirror", str(empty)]) == 2


# ----------------------------------------------------- refusals before the database

def _csv_zip(path: Path, files: dict[str, str]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"{name}.csv", text.encode("utf-8"))
    return path


def test_user_line_reusing_a_national_id_is_refused(seeded: str, tmp_path: Path) -> None:
    from territoires.errors import ImportRefusedError
    from test_storage import _national

    store = Store(seeded)
    store.replace_funding_source("national:", _national(2, 2024, "national:adultes-relais"))
    store.dispose()
    before = _snapshot(seeded)
    path = _csv_zip(tmp_path / "f.zip", {"financements": (
        "id;funder;funder_type;scheme;amount_eur;year_start;territory_level;territory_code\n"
        "adultes_relais-2024-1;Ville;collectivite;autre;10;2024;commune;33063\n")})
    with pytest.raises(ImportRefusedError) as exc:
        catalogue_ops.import_file(path, seeded)
    (problem,) = exc.value.problems
    assert (problem.sheet, problem.line, problem.column, problem.value) == (
        "financements.csv", 2, "id", "adultes_relais-2024-1")
    assert "nationale" in problem.message
    assert _snapshot(seeded) == before


def test_sqlite_and_postgresql_refuse_alike_before_the_database(
        engine_store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A NUL character and a 250-character id: PostgreSQL would refuse them, SQLite would
    store them; validation refuses both, with the same French messages, on both engines."""
    from territoires.errors import ImportRefusedError

    store = engine_store
    store.create_or_upgrade()
    monkeypatch.setattr(catalogue_ops, "Store", lambda url: store)
    monkeypatch.setattr(catalogue_ops, "_territory_index", lambda: (None, None, None))
    long_id = "x" * 250
    path = _csv_zip(tmp_path / "p.zip", {"initiatives": (
        "id;title;themes;maturity\n"
        f"{long_id};Titre;culture;emergence\n"
        "ok;Avec\x00nul;culture;emergence\n")})
    with pytest.raises(ImportRefusedError) as exc:
        catalogue_ops.import_file(path, "ignored")
    got = sorted((p.sheet, p.line, p.column, p.message) for p in exc.value.problems)
    assert got == [
        ("initiatives.csv", 2, "id", "identifiant trop long (250 caractères, au plus 200)"),
        ("initiatives.csv", 3, "title",
         "caractère nul (U+0000, position 5) interdit dans un texte")]
    assert len(store.load_catalogue().initiatives) == 0

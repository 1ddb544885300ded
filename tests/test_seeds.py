"""Tests of the seed catalogue (data/initiatives) and of its loader
(territoires.catalogue.seeds)."""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from territoires import vocab
from territoires.catalogue.model import TABLE_COLUMNS, Catalogue
from territoires.catalogue.seeds import load_seed_dir, load_seed_file, seed_totals
from territoires.errors import ValidationError

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "data" / "initiatives"
SOURCE_DOCS = Path(os.environ.get("TERRITOIRES_SOURCE_DOCS") or REPO.parent / "shared" / "seeds")

#: Funding figures read in the source documents (EUR), per fiche.
EXPECTED_FUNDING: dict[str, float] = {
    # PQN-A recueil, fiche expérience n°1: 16 500 € per year (Cité éducative + Ville de Pau)
    "pau-eleves-ambassadeurs-cm2-6e": 16_500,
    # fiche n°2: no amount given
    "gironde-cordee-aerocampus-ensam": 0,
    # fiche n°3: action budget 46 000 €
    "gironde-forum-orientation-inter-cites": 46_000,
    # fiche n°4: ACCES funding, no amount given
    "bordeaux-theatre-forum-tregey": 0,
    # fiche n°5: France 2030 AMI, no amount given
    "montresorais-terrecole-cm2-college": 0,
    # fiche n°6: Erasmus+ 267 555 € + 255 349,05 € + 647 066 € (2023-24, 2024-25, 2025-26)
    "cenon-erasmus-plus": 1_169_970.05,
    # fiche n°7: entirely funded by the Cité éducative, 24 460 €
    "bordeaux-plurilinguisme-petite-enfance": 24_460,
    # fiche n°8: no amount given
    "la-rochelle-egalite-mireuil": 0,
    # fiche n°9: no amount given
    "cenon-projet-social-global": 0,
    # fiche n°10: no amount given ("coût important")
    "chatellerault-formations-interprofessionnelles": 0,
    # fiche n°11: project cost 20 000 € (Ville du Bouscat + MILDECA)
    "le-bouscat-psfp-competences-psychosociales": 20_000,
    # RESOLIS sheet "Alliance pour l'éducation": budget 500 000 €
    "alliance-pour-l-education-ile-de-france": 500_000,
}

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE_RE = re.compile(r"(?:\+33|\b0)[1-9](?:[ .-]?\d{2}){4}\b")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_seed_dir(SEEDS)


# ---------------------------------------------------------------------------- the catalogue


def test_fiche_count_and_ids(catalogue: Catalogue) -> None:
    files = sorted(SEEDS.glob("*.yaml"))
    # 11 PQN-A experience sheets + RESOLIS; the PSFP tool sheet is part of the Le Bouscat fiche
    assert len(files) == 12
    assert len(catalogue) == 12
    assert sorted(catalogue.initiatives["id"]) == sorted(p.stem for p in files)
    assert set(catalogue.initiatives["id"]) == set(EXPECTED_FUNDING)
    assert catalogue.initiatives["id"].is_unique


def test_tables_follow_the_model(catalogue: Catalogue) -> None:
    for name, df in catalogue.tables().items():
        assert list(df.columns) == TABLE_COLUMNS[name], name
    ini = catalogue.initiatives
    assert all(isinstance(v, list) for col in ("themes", "publics", "alliance_levels")
               for v in ini[col])
    assert (ini["version"] == 1).all()
    assert ini["contact_email"].isna().all()
    assert (ini["created_at"] == pd.Timestamp("2026-06-30T00:00:00Z")).all()
    assert (ini["created_at"] == ini["updated_at"]).all()
    assert str(ini["created_at"].dt.tz) == "UTC"
    assert set(catalogue.organisations["role"]) == {"porteur", "partenaire"}
    # every initiative has a porteur and at least one territory
    porteurs = catalogue.organisations.query("role == 'porteur'")
    assert set(porteurs["initiative_id"]) == set(ini["id"])
    assert set(catalogue.territories["initiative_id"]) == set(ini["id"])


def test_vocabulary_values_are_codes(catalogue: Catalogue) -> None:
    ini = catalogue.initiatives
    checks = [
        (ini["scale"].dropna(), vocab.SCALES),
        (ini["maturity"], vocab.MATURITY),
        (ini["themes"].explode().dropna(), vocab.THEMES),
        (ini["publics"].explode().dropna(), vocab.PUBLICS),
        (ini["alliance_levels"].explode().dropna(), vocab.ALLIANCE_LEVELS),
        (catalogue.organisations["type"], vocab.ORG_TYPES),
        (catalogue.organisations["role"], vocab.ORG_ROLES),
        (catalogue.territories["level"], vocab.TERRITORY_LEVELS),
        (catalogue.funding["funder_type"], vocab.FUNDER_TYPES),
        (catalogue.funding["scheme"], vocab.SCHEMES),
        (catalogue.funding["territory_level"], vocab.TERRITORY_LEVELS),
    ]
    for values, vocabulary in checks:
        bad = set(values) - set(vocabulary.codes)
        assert not bad, f"{vocabulary.name}: {bad}"
    assert all(ini["themes"].map(len) > 0)


def test_funding_sums_match_sources(catalogue: Catalogue) -> None:
    totals = seed_totals(catalogue).set_index("initiative_id")["funding_eur"]
    assert list(seed_totals(catalogue).columns) == ["initiative_id", "funding_eur"]
    for iid, expected in EXPECTED_FUNDING.items():
        assert totals[iid] == pytest.approx(expected, abs=0.005), iid


def test_source_total_equals_sum_of_lines(catalogue: Catalogue) -> None:
    import yaml

    totals = seed_totals(catalogue).set_index("initiative_id")["funding_eur"]
    stated = 0
    for path in sorted(SEEDS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert "source_total_eur" in data, path.name
        if data["source_total_eur"] is not None:
            stated += 1
            assert totals[data["id"]] == pytest.approx(data["source_total_eur"]), path.name
    assert stated == 4  # forum, plurilinguisme, Le Bouscat, Alliance pour l'éducation


def test_funding_lines_ids_territory_and_source(catalogue: Catalogue) -> None:
    f = catalogue.funding
    assert f["id"].is_unique
    assert (f["amount_eur"] >= 0).all()
    assert (f["year_end"] >= f["year_start"]).all()
    first = catalogue.territories.groupby("initiative_id", sort=False).first()
    for _, line in f.iterrows():
        iid = line["initiative_id"]
        assert line["id"].startswith(f"{iid}-f")
        assert line["source"] == f"seed:{iid}.yaml"
        assert (line["territory_level"], line["territory_code"]) == (
            first.loc[iid, "level"], first.loc[iid, "code"])
        assert line["beneficiary"]


def test_erasmus_cenon_lines_and_indicators(catalogue: Catalogue) -> None:
    f = catalogue.funding.query("initiative_id == 'cenon-erasmus-plus'")
    assert list(f["id"]) == [f"cenon-erasmus-plus-f{n}" for n in (1, 2, 3)]
    assert list(f["year_start"]) == [2023, 2024, 2025]
    assert list(f["year_end"]) == [2024, 2025, 2026]
    assert list(f["amount_eur"]) == [267_555, 255_349.05, 647_066]
    assert set(f["scheme"]) == {"erasmus_plus"} and set(f["funder_type"]) == {"europe"}
    assert set(f["territory_code"]) == {"33119"}
    ind = catalogue.indicators.query("initiative_id == 'cenon-erasmus-plus'")
    values = dict(zip(ind["unit"], ind["value"], strict=True))
    assert values["élèves"] == 526
    assert values["professionnels"] == 156


def test_theatre_forum_is_stopped(catalogue: Catalogue) -> None:
    row = catalogue.initiatives.set_index("id").loc["bordeaux-theatre-forum-tregey"]
    assert row["maturity"] == "arretee"
    assert row["end_date"] is not None and row["end_date"] >= row["start_date"]


def test_dates_are_dates(catalogue: Catalogue) -> None:
    ini = catalogue.initiatives
    for start, end in zip(ini["start_date"], ini["end_date"], strict=True):
        assert isinstance(start, dt.date)
        assert end is None or (isinstance(end, dt.date) and end >= start)


def test_no_email_or_phone_in_fiches() -> None:
    for path in sorted(SEEDS.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert not EMAIL_RE.search(text), path.name
        assert not PHONE_RE.search(text), path.name
        assert "contact_email" not in text and "mail" not in text.lower(), path.name


def test_email_and_phone_patterns_detect_the_sources_contacts() -> None:
    # the guard above must be able to fail: the patterns catch the forms used in the sources
    assert EMAIL_RE.search("M. prenom.nom@ville-exemple.fr")
    assert PHONE_RE.search("T. 06 14 96 68 40")
    assert PHONE_RE.search("05.56.33.34.14")


@pytest.mark.integration
def test_territory_codes_exist_in_mirror(catalogue: Catalogue) -> None:
    mirror = Path(os.environ.get("TERRITOIRES_MIRROR") or REPO.parent / "shared" / "data")
    if not mirror.is_dir():
        pytest.skip(f"miroir absent : {mirror}")

    def column(rel: str, col: str) -> set[str]:
        with open(mirror / rel, encoding="utf-8", newline="") as fh:
            return {row[col] for row in csv.DictReader(fh)}

    communes_csv = "communes/communes_cog2026.csv"
    known = {
        "commune": column(communes_csv, "code_insee"),
        "departement": column(communes_csv, "code_dep"),
        "region": column(communes_csv, "code_reg"),
        "epci": column(communes_csv, "siren_epci"),
        "qpv": column("qpv/qpv2024_code_list_derived.csv", "code_qp"),
        "cite_educative": {
            code.strip()
            for ids in column("cites_educatives/cites_educatives_2024.csv", "id_territoire")
            for code in ids.split(";")
        },
    }
    pairs = pd.concat([
        catalogue.territories[["level", "code"]],
        catalogue.funding[["territory_level", "territory_code"]].set_axis(
            ["level", "code"], axis=1),
    ])
    unknown = [(lv, c) for lv, c in pairs.itertuples(index=False) if c not in known[lv]]
    assert not unknown


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", vocab.fold(text).replace("’", "'"))


def test_fiche_texts_are_not_copied_from_sources(catalogue: Catalogue) -> None:
    docs = sorted(SOURCE_DOCS.glob("*.txt")) if SOURCE_DOCS.is_dir() else []
    if not docs:
        pytest.skip(f"documents sources absents : {SOURCE_DOCS}")
    source = " " + " ".join(
        " ".join(_words(p.read_text(encoding="utf-8"))) for p in docs) + " "
    n = 12
    copied = []
    ini = catalogue.initiatives
    columns = ["title", "summary", "objectives", "actions", "results", "difficulties",
               "lessons", "outlook"]
    for _, row in ini.iterrows():
        for col in columns:
            words = _words(row[col] or "")
            for i in range(len(words) - n + 1):
                run = " ".join(words[i:i + n])
                if f" {run} " in source:
                    copied.append((row["id"], col, run))
                    break
    assert not copied


def test_copy_guard_detects_a_copied_run() -> None:
    docs = sorted(SOURCE_DOCS.glob("004_*.txt")) if SOURCE_DOCS.is_dir() else []
    if not docs:
        pytest.skip("documents sources absents")
    source = " ".join(_words(docs[0].read_text(encoding="utf-8")))
    sample = "Les voyages durent généralement une semaine et Erasmus + s'adresse également aux"
    # a run built from the source is found once normalised (case, accents, punctuation)
    assert " ".join(_words("Le projet cenonnais a permis une vraie dynamique dans les "
                           "établissements de la ville")) in source
    assert " ".join(_words(sample)) not in source


# ---------------------------------------------------------------------------- loader errors

VALID = """\
id: essai
title: Une fiche d'essai
summary: Courte.
scale: commune
start_date: 2024-01-01
end_date: 2025-01-01
themes: [orientation]
publics: [college]
alliance_levels: [meso]
maturity: emergence
source:
  document: Test
  sheet: null
  url: null
contact:
  organisation: Ville
  role: Service
porteurs:
  - {name: Ville, type: collectivite, siret: null}
partners: []
territories:
  - {level: commune, code: "33063"}
indicators:
  - {label: Élèves, value: 10, unit: élèves, year: 2024}
funding:
  - {funder: État, funder_type: etat, scheme: politique_ville, amount_eur: 1000,
     year_start: 2024, year_end: null, beneficiary: null}
  - {funder: Département, funder_type: collectivite, scheme: droit_commun, amount_eur: 500,
     year_start: 2024, year_end: 2025, beneficiary: Asso,
     territory: {level: departement, code: "33"}}
source_total_eur: 1500
recorded_at: 2026-06-30T00:00:00Z
"""


def _write(tmp_path: Path, text: str, name: str = "essai.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path) -> list:
    with pytest.raises(ValidationError) as info:
        load_seed_file(path)
    return info.value.problems


def test_valid_tiny_fiche(tmp_path: Path) -> None:
    cat = load_seed_file(_write(tmp_path, VALID))
    f = cat.funding
    assert list(f["id"]) == ["essai-f1", "essai-f2"]
    assert list(f["year_end"]) == [2024, 2025]  # year_end defaults to year_start
    assert list(f["beneficiary"]) == ["Ville", "Asso"]  # defaults to the porteur
    assert list(zip(f["territory_level"], f["territory_code"], strict=True)) == [
        ("commune", "33063"), ("departement", "33")]
    assert list(f["source"]) == ["seed:essai.yaml"] * 2
    assert cat.initiatives.loc[0, "start_date"] == dt.date(2024, 1, 1)
    assert cat.indicators.loc[0, "value"] == 10


def test_labels_are_accepted_and_stored_as_codes(tmp_path: Path) -> None:
    text = VALID.replace("themes: [orientation]", "themes: [Orientation et ambition, sciences]")
    cat = load_seed_file(_write(tmp_path, text))
    assert cat.initiatives.loc[0, "themes"] == ["orientation", "sciences"]


def test_unknown_theme_lists_valid_values(tmp_path: Path) -> None:
    text = VALID.replace("themes: [orientation]", "themes: [orientation, jardinage]")
    path = _write(tmp_path, text)
    (p,) = _problems(path)
    assert p.file == "essai.yaml"
    assert p.column == "themes[2]"
    assert p.value == "jardinage"
    assert p.line == 7
    assert "orientation (Orientation et ambition)" in p.message
    assert "coordination_territoriale" in p.message


def test_missing_title(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("title: Une fiche d'essai\n", ""))
    (p,) = _problems(path)
    assert (p.file, p.column) == ("essai.yaml", "title")
    assert "obligatoire" in p.message


def test_end_before_start(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("end_date: 2025-01-01", "end_date: 2023-06-01"))
    (p,) = _problems(path)
    assert (p.file, p.column, p.line) == ("essai.yaml", "end_date", 6)
    assert "précède" in p.message


def test_negative_amount_and_bad_years_all_reported(tmp_path: Path) -> None:
    text = VALID.replace("amount_eur: 1000", "amount_eur: -5").replace(
        "year_start: 2024, year_end: 2025", "year_start: 2024, year_end: 2020")
    amount_line = text.splitlines().index(next(
        ln for ln in text.splitlines() if "amount_eur: -5" in ln)) + 1
    problems = _problems(_write(tmp_path, text))
    columns = {p.column for p in problems}
    assert columns == {"funding[1].amount_eur", "funding[2].year_end"}
    assert all(p.file == "essai.yaml" for p in problems)
    neg = next(p for p in problems if p.column == "funding[1].amount_eur")
    assert neg.value == -5 and neg.line == amount_line


def test_bad_slug_id_mismatch_and_unknown_key(tmp_path: Path) -> None:
    text = VALID.replace("id: essai", "id: Essai_1").replace("summary:", "resume: x\nsummary:")
    problems = _problems(_write(tmp_path, text))
    messages = {(p.column, p.message.split(" ")[0]) for p in problems}
    assert ("id", "identifiant") in messages
    assert ("id", "l'identifiant") in messages
    assert any(p.column == "resume" and "inconnu" in p.message for p in problems)


def test_problems_of_several_files_are_collected(tmp_path: Path) -> None:
    _write(tmp_path, VALID.replace("maturity: emergence", "maturity: finie"))
    _write(tmp_path, VALID.replace("id: essai", "id: autre").replace("title: Une fiche d'essai\n",
                                                                      ""), "autre.yaml")
    with pytest.raises(ValidationError) as info:
        load_seed_dir(tmp_path)
    found = {(p.file, p.column) for p in info.value.problems}
    assert found == {("essai.yaml", "maturity"), ("autre.yaml", "title")}


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    (p,) = _problems(_write(tmp_path, "id: essai\ntitle: [non fermé\nmaturity: x\n"))
    assert p.file == "essai.yaml" and p.line is not None and "YAML" in p.message

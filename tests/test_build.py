"""Tests of territoires.pipeline.build on tiny raw fixtures in both formats (official and mirror),
and on the offline mirror (integration)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Polygon

from territoires.errors import LayerError
from territoires.pipeline import build, sources
from territoires.pipeline.layers import (
    DISPLAY_LEVELS,
    FRANCE_LAYERS,
    LAYER_SCHEMAS,
    display_path,
    has_display_level,
    load_layers,
)

FIXTURES = Path(__file__).parent / "fixtures" / "raw"
MIRROR = FIXTURES / "mirror"
OFFICIAL = FIXTURES / "official"


def mirror_cache(tmp_path: Path) -> Path:
    """Cache filled from the tiny fixture mirror."""
    cache = tmp_path / "cache"
    sources.fetch_all(cache, MIRROR, progress=False)
    return cache


def official_cache(tmp_path: Path) -> Path:
    """Cache laid out as an official fetch leaves it (archives already extracted)."""
    cache = tmp_path / "cache"
    off = cache / "official"
    qpv = off / "qpv" / "extract" / sources.QPV_ZIP_MEMBER
    qpv.parent.mkdir(parents=True)
    shutil.copy(OFFICIAL / "qpv" / qpv.name, qpv)
    cog = off / "cog" / "extract" / "package" / "data"
    shutil.copytree(MIRROR / "communes" / "cog2026_etalab", cog)
    shutil.copytree(OFFICIAL / "qpv_population", off / "qpv_population")
    shutil.copytree(OFFICIAL / "communes_contours", off / "communes_contours")
    (off / "admin_contours").mkdir()
    for n in ("departements", "regions"):
        shutil.copy(MIRROR / "communes" / "contours_2018_gregoiredavid"
                    / f"{n}-version-simplifiee.geojson", off / "admin_contours")
    for gen in ("ci-ville", "ci-ville2"):
        (off / "contrats_ville" / gen).mkdir(parents=True)
        shutil.copy(MIRROR / "funding" / gen / "geom_cv_ctr.json", off / "contrats_ville" / gen)
    (off / "cites_educatives").mkdir()
    shutil.copy(MIRROR / "cites_educatives" / "citeduc_geom.geojson", off / "cites_educatives")
    return cache


def _status(geo: Path) -> dict:
    return json.loads((geo / "layers.json").read_text(encoding="utf-8"))["layers"]


@pytest.fixture(scope="module")
def mirror_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, build.BuildReport]:
    tmp = tmp_path_factory.mktemp("tiny_mirror")
    cache = mirror_cache(tmp)
    return tmp / "geo", build.build_all(cache, tmp / "geo")


@pytest.fixture(scope="module")
def official_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, build.BuildReport]:
    tmp = tmp_path_factory.mktemp("tiny_official")
    cache = official_cache(tmp)
    return tmp / "geo", build.build_all(cache, tmp / "geo")


def test_layers_follow_the_schema(mirror_built, official_built):
    for geo, _ in (mirror_built, official_built):
        layers = load_layers(geo)
        for name, gdf in layers.items():
            assert list(gdf.columns) == [*LAYER_SCHEMAS[name][1], "geometry"], name
            assert gdf.crs.to_epsg() == 4326
            assert gdf[LAYER_SCHEMAS[name][0]].is_unique


def test_mirror_communes_arrondissements_and_merged(mirror_built):
    geo, _ = mirror_built
    c = load_layers(geo).communes.set_index("code_insee")
    assert len(c) == 12  # 10 communes actuelles + 2 arrondissements
    assert c.loc["75101", "type"] == "arrondissement"
    assert c.loc["75101", "parent"] == "75056"
    assert c.loc["75118", "siren_epci"] == "200054781"  # EPCI of its parent
    assert c.loc["75056", "type"] == "commune" and pd.isna(c.loc["75056", "parent"])
    assert c.loc["33063", "siren_epci"] == "243300316"
    assert c.loc["33063", "population"] == 267991
    # 2018 contours: Val de Virvée 33018 = union of 33018 + 33371 + 33495 (anciensCodes)
    val = c.loc["33018", "geometry"]
    assert val.geom_type == "Polygon" and val.is_valid
    assert val.area == pytest.approx(3 * 0.02 * 0.02, rel=1e-6)
    assert c.loc["33162", "geometry"] is None  # no contour in the mirror
    assert c.loc["2A004", "geometry"] is not None  # from the second département file
    info = _status(geo)["communes"]
    assert info["with_polygon"] == 6 and info["origin"] == "mirror"
    assert info["population_known"] == 12
    assert "1 commune(s) fusionnée(s)" in " ".join(info["notes"])


def test_mirror_qpv_national_file_with_full_resolution_subset(mirror_built):
    geo, _ = mirror_built
    q = load_layers(geo).qpv.set_index("code_qp")
    assert sorted(q.index) == ["QN02A01M", "QN03301I", "QN03307M", "QN03309M", "QN03312M",
                               "QN03317M"]
    assert (q["geom_kind"] == "polygon").all()
    assert list(q.loc["QN03309M", "communes"]) == ["33063", "33119"]
    assert list(q.loc["QN03301I", "communes"]) == ["33069", "33162"]
    # the subset's (full-resolution) polygon wins over the national one: 0.006° square,
    # the national fixture has 0.004° squares
    assert q.loc["QN03309M", "geometry"].area == pytest.approx(0.006 ** 2, rel=1e-6)
    assert q.loc["QN03307M", "geometry"].area == pytest.approx(0.004 ** 2, rel=1e-6)
    assert q.loc["QN03309M", "siren_epci"] == "243300316"
    info = _status(geo)["qpv"]
    assert (info["with_polygon"], info["with_centroid"], info["count"]) == (6, 0, 6)
    assert "2 QPV à pleine résolution" in " ".join(info["notes"])


def test_mirror_qpv_population_from_the_third_party_copy(mirror_built):
    geo, _ = mirror_built
    q = load_layers(geo).qpv.set_index("code_qp")
    assert q.loc["QN03317M", "population"] == 4999
    assert q.loc["QN03317M", "population_source"] == build.POP_SOURCE_COPY
    # absent from the copy: unknown, not 0
    assert pd.isna(q.loc["QN03301I", "population"])
    assert pd.isna(q.loc["QN03301I", "population_source"])
    assert "QN97601M" not in q.index  # obsolete code of the copy left out
    info = _status(geo)["qpv"]
    assert info["population_known"] == 5
    notes = " ".join(info["notes"])
    assert "republication tierce" in notes and "1 code(s) du fichier absents" in notes
    assert "republication tierce" in info["source"]


def test_insee_population_preferred_per_qpv(tmp_path: Path):
    cache = mirror_cache(tmp_path)
    pop = cache / "official" / "qpv_population" / "pop_QPV24.csv"
    pop.parent.mkdir(parents=True)
    shutil.copy(OFFICIAL / "qpv_population" / "pop_QPV24.csv", pop)
    build.build_all(cache, tmp_path / "geo")
    q = load_layers(tmp_path / "geo").qpv.set_index("code_qp")
    # INSEE has Le Lac, Benauge, Les Salines; the copy fills Palmer and Génicart Est
    assert q.loc["QN03307M", "population"] == 5200
    assert q.loc["QN03307M", "population_source"] == build.POP_SOURCE_INSEE
    assert q.loc["QN02A01M", "population"] == 1800
    assert q.loc["QN03312M", "population"] == 6100
    assert q.loc["QN03312M", "population_source"] == build.POP_SOURCE_COPY
    assert _status(tmp_path / "geo")["qpv"]["population_known"] == 5


def test_older_mirror_without_national_qpv_file(tmp_path: Path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR, mirror)
    (mirror / "qpv" / "qpv2024_complete_1584_derived.geojson").unlink()
    cache = tmp_path / "cache"
    sources.fetch_all(cache, mirror, progress=False)
    build.build_all(cache, tmp_path / "geo")
    q = load_layers(tmp_path / "geo").qpv.set_index("code_qp")
    assert q.loc["QN03309M", "geom_kind"] == "polygon"
    assert q.loc["QN03301I", "geom_kind"] == "centroid"
    # a multi-commune QPV's centroid parts are combined into one point
    pt = q.loc["QN03301I", "geometry"]
    assert pt.geom_type == "Point"
    assert (pt.x, pt.y) == pytest.approx((-0.59, 44.87))
    info = _status(tmp_path / "geo")["qpv"]
    assert (info["with_polygon"], info["with_centroid"], info["count"]) == (2, 4, 6)


def test_departements_and_regions_dissolved_from_communes(tmp_path: Path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR, mirror)
    for n in ("departements", "regions"):
        (mirror / "communes" / "contours_2018_gregoiredavid"
         / f"{n}-version-simplifiee.geojson").unlink()
    cache = tmp_path / "cache"
    sources.fetch_all(cache, mirror, progress=False)
    build.build_all(cache, tmp_path / "geo")
    layers = load_layers(tmp_path / "geo")
    deps = layers.departements.set_index("code_dep")
    # Gironde = its 5 communes with a contour (Val de Virvée counts 3 squares), Eysines lacks one
    assert deps.loc["33", "geometry"].area == pytest.approx(7 * 0.0004, rel=1e-6)
    assert deps.loc["2A", "geometry"] is not None and deps.loc["64", "geometry"] is None
    info = _status(tmp_path / "geo")["departements"]
    assert any(p.startswith("Gironde (33, 5/6 communes)") for p in info["partial"])
    assert "Corse-du-Sud (2A)" in " ".join(info["notes"])
    regs = layers.regions.set_index("code_reg")
    assert regs.loc["94", "geometry"] is not None


def test_corsica_codes_stay_strings(mirror_built, official_built):
    for geo, _ in (mirror_built, official_built):
        layers = load_layers(geo)
        deps = layers.departements.set_index("code_dep")
        assert {"2A", "2B"} <= set(deps.index)
        assert "975" not in deps.index  # collectivité d'outre-mer left out
        assert deps.loc["2A", "code_reg"] == "94"
        q = layers.qpv.set_index("code_qp")
        assert q.loc["QN02A01M", "code_dep"] == "2A"
        assert list(q.loc["QN02A01M", "communes"]) == ["2A004"]
        epci = layers.epci.set_index("siren_epci")
        assert list(epci.loc["242010056", "code_deps"]) == ["2A"]
        assert layers.communes.set_index("code_insee").loc["2B033", "code_dep"] == "2B"


def test_epci_regions_and_departements(mirror_built):
    geo, _ = mirror_built
    layers = load_layers(geo)
    epci = layers.epci.set_index("siren_epci")
    assert epci.loc["243300316", "population"] == 368491
    assert list(epci.loc["243300316", "code_regs"]) == ["75"]
    # Eysines has no contour: Bordeaux Métropole is the union of the 4 others
    assert epci.loc["243300316", "geometry"].area == pytest.approx(4 * 0.0004, rel=1e-6)
    assert epci.loc["200054781", "geometry"] is None
    info = _status(geo)["epci"]
    assert info["partial"] == ["Bordeaux Métropole (243300316, 4/5 communes)"]
    assert "Bordeaux Métropole (243300316, 4/5 communes)" in " ".join(info["notes"])
    assert len(layers.regions) == 3 and len(layers.departements) == 5
    assert layers.departements.set_index("code_dep").loc["64", "geometry"] is None


def test_contrats_and_cites(mirror_built):
    geo, _ = mirror_built
    layers = load_layers(geo)
    cv = layers.contrats_ville.set_index("code_cv")
    assert cv.loc["CV105", "generation"] == "2015-2023"
    assert cv.loc["CN03301I", "generation"] == "2024-2030"
    assert cv.loc["CN03301I", "population"] == 91004.0
    # a commune SIREN is mapped to its EPCI through the COG
    assert cv.loc["CV200", "siren"] == "212000046"
    assert cv.loc["CV200", "siren_epci"] == "242010056"
    ce = layers.cites_educatives.set_index("id_cite")
    assert {"cite-002", "cite-127"} <= set(ce.index)  # merged ids split
    assert ce.loc["cite-127", "nom"] == "Paris Centre"
    assert list(ce.loc["cite-002", "communes"]) == ["75056"]
    assert list(ce.loc["cite-141", "communes"]) == ["33119", "33249"]
    assert ce.loc["cite-141", "geometry"].geom_type == "MultiPoint"
    assert ce.loc["cite-141", "code_dep"] == "33"


def test_official_format(official_built):
    geo, report = official_built
    layers = load_layers(geo)
    q = layers.qpv.set_index("code_qp")
    assert (q["geom_kind"] == "polygon").all() and len(q) == 5
    assert q.loc["QN03307M", "population"] == 5200
    assert pd.isna(q.loc["QN03317M", "population"])
    # QPV in a Paris arrondissement: COG of the arrondissement (parent's EPCI)
    assert q.loc["QN07518M", "siren_epci"] == "200054781"
    assert q.loc["QN07518M", "code_dep"] == "75"
    c = layers.communes.set_index("code_insee")
    assert c.loc["33018", "geometry"].area == pytest.approx(0.0004, rel=1e-6)
    assert c.loc["2A004", "geometry"] is not None
    info = _status(geo)
    assert info["qpv"]["origin"] == "official" and info["communes"]["origin"] == "official"
    assert "source officielle" in report.describe()


def test_the_map_of_france_draws_coarser_regions_and_departements(mirror_built) -> None:
    """The "france" level holds the régions and départements only, in no more points than
    the national level (sub-pixel at the zoom of all France), with the same units."""
    geo, _ = mirror_built
    assert set(FRANCE_LAYERS) == {"regions", "departements"}
    for name in FRANCE_LAYERS:
        national = gpd.read_parquet(display_path(name, "national", geo))
        france = gpd.read_parquet(display_path(name, "france", geo))
        assert list(france.iloc[:, 0]) == list(national.iloc[:, 0])
        assert france.geometry.is_valid.all()
        n_fr = shapely.get_num_coordinates(np.asarray(france.geometry.values)).sum()
        n_nat = shapely.get_num_coordinates(np.asarray(national.geometry.values)).sum()
        assert n_fr <= n_nat, (name, n_fr, n_nat)


def test_the_map_of_france_halves_the_departements_of_the_mirror(mirror_geo_dir: Path) -> None:
    """On the real geography, the national view's largest layer in half its points."""
    n_fr, n_nat = (shapely.get_num_coordinates(np.asarray(gpd.read_parquet(
        display_path("departements", level, mirror_geo_dir)).geometry.values)).sum()
        for level in ("france", "national"))
    assert n_fr < 0.6 * n_nat, (n_fr, n_nat)


def test_display_versions(mirror_built):
    geo, _ = mirror_built
    info = _status(geo)
    for name in build.POLYGON_LAYERS:
        for level in DISPLAY_LEVELS:
            path = display_path(name, level, geo)
            if not has_display_level(name, level):
                assert not path.exists()  # the map of France draws its national one
                continue
            assert path.exists()
            assert info[name]["display_bytes"][level] == path.stat().st_size
            assert "simplif" in info[name]["simplification"][level]
            disp = gpd.read_parquet(path)
            assert list(disp.columns) == [*build.DISPLAY_COLUMNS[name], "geometry"]
            assert disp.geometry.is_valid.all()
            coords = shapely.get_coordinates(np.asarray(disp.geometry.values))
            assert np.allclose(coords * 1e5, np.round(coords * 1e5), atol=1e-6)
    # the fixture's squares have 0.02° sides: already coarser than the tolerance
    assert info["communes"]["simplification"]["national"].startswith("déjà simplifiée")


def _dense(poly: Polygon) -> Polygon:
    return shapely.segmentize(poly, 0.001)


def test_display_coverage_simplify_and_fallback():
    tiles = gpd.GeoDataFrame(
        {"code_reg": ["1", "2"], "nom": ["a", "b"]},
        geometry=[_dense(Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])),
                  _dense(Polygon([(1, 0), (2, 0), (2, 1), (1, 1)]))], crs="EPSG:4326")
    disp, method = build.simplify_display(tiles, "regions", 0.01, coverage=True)
    assert method.startswith("coverage_simplify")
    overlapping = gpd.GeoDataFrame(
        {"code_reg": ["1", "2"], "nom": ["a", "b"]},
        geometry=[_dense(Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])),
                  _dense(Polygon([(0.5, 0), (1.5, 0), (1.5, 1), (0.5, 1)]))], crs="EPSG:4326")
    disp, method = build.simplify_display(overlapping, "regions", 0.01)
    assert method.startswith("simplify(preserve_topology=True)")
    assert len(disp) == 2
    # already coarse (segments far longer than the tolerance): rounded only
    coarse = tiles.set_geometry([Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])] * 2)
    disp, method = build.simplify_display(coarse, "regions", 0.01)
    assert method.startswith("déjà simplifiée") and len(disp) == 2


def test_status_text_mentions_each_layer(mirror_built):
    geo, _ = mirror_built
    text = build.status_text(geo, geo.parent / "cache")
    for name in LAYER_SCHEMAS:
        assert f"- {name} :" in text
    assert "qpv : 6 entités (6 avec contour ; population connue pour 5)" in text
    assert "republication tierce" in text
    assert "- qpv_population : absente" in text
    assert "territoires data build" in build.status_text(geo.parent / "nope", geo.parent)


# --- quirks on modified copies of the tiny mirror -------------------------------------------

def _rewrite(path: Path, fn) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    fn(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_lambert93_layer_is_reprojected(tmp_path: Path):
    cache = mirror_cache(tmp_path)
    path = (cache / "mirror" / "communes" / "contours_2018_gregoiredavid"
            / "departements-version-simplifiee.geojson")
    original = gpd.read_file(path)
    path.unlink()
    original.to_crs("EPSG:2154").to_file(path, driver="GeoJSON")
    report = build.build_all(cache, tmp_path / "geo")
    info = _status(tmp_path / "geo")["departements"]
    assert any("EPSG:2154" in r for r in info["reprojected_from"])
    assert "reprojetée de EPSG:2154" in report.describe()
    deps = load_layers(tmp_path / "geo").departements.set_index("code_dep")
    assert deps.loc["33", "geometry"].centroid.x == pytest.approx(-0.5, abs=1e-6)


def test_layer_without_crs_is_refused(tmp_path: Path):
    gdf = gpd.GeoDataFrame({"code": ["33"]}, geometry=[Polygon([(0, 0), (1, 0), (1, 1)])])
    path = tmp_path / "deps.shp"
    with pytest.warns(UserWarning, match="crs"):
        gdf.to_file(path)
    path.with_suffix(".prj").unlink(missing_ok=True)
    with pytest.raises(LayerError, match="CRS") as exc:
        build.read_vector(path, "departements")
    assert "deps.shp" in str(exc.value) and "« departements »" in str(exc.value)


def test_invalid_geometry_is_repaired_and_counted(tmp_path: Path):
    cache = mirror_cache(tmp_path)
    path = cache / "mirror" / "communes" / "contours_2018_gregoiredavid" / \
        "communes-33-gironde.geojson"

    def bowtie(doc: dict) -> None:
        for f in doc["features"]:
            if f["properties"]["code"] == "33249":
                f["geometry"]["coordinates"] = [[[-0.55, 44.83], [-0.53, 44.85],
                                                 [-0.53, 44.83], [-0.55, 44.85],
                                                 [-0.55, 44.83]]]
    _rewrite(path, bowtie)
    build.build_all(cache, tmp_path / "geo")
    assert _status(tmp_path / "geo")["communes"]["repaired"] == 1
    lormont = load_layers(tmp_path / "geo").communes.set_index("code_insee").loc["33249"]
    assert lormont.geometry.is_valid and lormont.geometry.geom_type == "MultiPolygon"


def test_duplicate_codes_are_refused_and_geo_is_left_intact(tmp_path: Path):
    cache = mirror_cache(tmp_path)
    geo = tmp_path / "geo"
    build.build_all(cache, geo)
    before = (geo / "layers.json").read_bytes()
    path = cache / "mirror" / "qpv" / "qpv2024_subset_33_17_64_86.geojson"
    _rewrite(path, lambda d: d["features"].append(d["features"][0]))
    with pytest.raises(LayerError) as exc:
        build.build_all(cache, geo)
    msg = str(exc.value)
    for part in ("qpv2024_subset_33_17_64_86.geojson", "« qpv »", "« code_qp »", "QN03309M"):
        assert part in msg
    assert (geo / "layers.json").read_bytes() == before
    assert len(load_layers(geo).qpv) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "geo"]  # no leftovers


def test_missing_required_source_is_named(tmp_path: Path):
    with pytest.raises(LayerError, match="« cog »"):
        build.build_all(tmp_path / "empty", tmp_path / "geo")
    assert not (tmp_path / "geo").exists()


def test_qpv_population_reader(tmp_path: Path):
    p = tmp_path / "pop.csv"
    p.write_text("CODGEO;LIBGEO;POP_MUN\nQN02A01M;X;1 234\nQN03309M;Y;\n", encoding="utf-8")
    assert build.read_qpv_population(p) == {"QN02A01M": 1234}
    p.write_text("CODGEO;LIBGEO;POP_MUN\nQN02A01M;X;beaucoup\n", encoding="utf-8")
    with pytest.raises(LayerError, match=r"ligne 2.*POP_MUN.*beaucoup"):
        build.read_qpv_population(p)


def test_build_keeps_committed_readme(tmp_path: Path):
    cache = mirror_cache(tmp_path)
    geo = tmp_path / "geo"
    geo.mkdir()
    (geo / "README.md").write_text("geo", encoding="utf-8")
    (geo / "stale.parquet").write_text("x", encoding="utf-8")
    build.build_all(cache, geo)
    assert (geo / "README.md").read_text(encoding="utf-8") == "geo"
    assert not (geo / "stale.parquet").exists()


# --- integration: the offline mirror ---------------------------------------------------------

@pytest.mark.integration
def test_mirror_qpv(mirror_geo_dir: Path):
    q = load_layers(mirror_geo_dir).qpv.set_index("code_qp")
    assert len(q) == 1584
    assert (q["geom_kind"] == "polygon").sum() == 1584
    assert q.geometry.is_valid.all()
    assert list(q.loc["QN03309M", "communes"]) == ["33063", "33119"]
    assert q["population"].notna().sum() >= 1470
    assert q.loc["QN01701M", "population"] == 7077  # Mireuil
    assert q.loc["QN03317M", "population"] == 4999  # Génicart Est
    assert set(q["population_source"].dropna()) == {build.POP_SOURCE_COPY}
    assert q.loc["QN03317M", "code_dep"] == "33"


@pytest.mark.integration
def test_mirror_communes_and_epci(mirror_geo_dir: Path):
    layers = load_layers(mirror_geo_dir)
    c = layers.communes.set_index("code_insee")
    assert len(c) == 35014
    # only Wallis-et-Futuna and Clipperton lack a population in the COG
    assert all(code.startswith(("984", "989")) for code in c.index[c["population"].isna()])
    assert c["population"].isna().sum() <= 6
    communes = c[c["type"] == "commune"]
    assert communes["siren_epci"].notna().sum() >= 34_800
    expected = {"33063": "243300316", "33119": "243300316", "33249": "243300316",
                "33069": "243300316", "64445": "200067254", "17300": "241700434",
                "86066": "248600413"}
    for code, epci in expected.items():
        assert c.loc[code, "siren_epci"] == epci, code
        assert c.loc[code, "geometry"] is not None, code
    assert (c["type"] == "arrondissement").sum() == 45
    assert c.geometry.notna().sum() >= 34_800
    assert len(layers.epci) == 1255 and len(layers.departements) == 101
    assert len(layers.regions) == 18
    assert layers.epci.geometry.notna().sum() == 1255
    assert layers.departements.geometry.notna().all() and layers.regions.geometry.notna().all()
    partial = _status(mirror_geo_dir)["epci"]["partial"]
    assert 0 < len(partial) <= 10


@pytest.mark.integration
def test_mirror_status(mirror_geo_dir: Path):
    text = build.status_text(mirror_geo_dir, mirror_geo_dir.parent / "cache")
    for name in LAYER_SCHEMAS:
        assert f"- {name} :" in text
    assert "qpv : 1584 entités (1584 avec contour ; population connue pour 1476)" in text
    assert "41 QPV à pleine résolution" in text
    assert "EPCI avec un contour partiel" in text


def test_later_build_removes_leftovers_of_killed_builds(tmp_path: Path):
    """A killed build (kill -9) leaves its temp folder; the next build removes them all,
    even when that build then fails, and leaves nothing of its own."""
    for name in (".geo.k1b2c3.build", ".geo.x9y8z7.build", ".geo.q1w2e3.old"):
        (tmp_path / name / "layers").mkdir(parents=True)
        (tmp_path / name / "layers" / "qpv.parquet").write_bytes(b"x" * 1000)
    (tmp_path / ".other.build").mkdir()  # not ours: kept
    with pytest.raises(LayerError):
        build.build_all(tmp_path / "empty", tmp_path / "geo")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.build"]


def test_qpv_on_a_merged_commune_gets_the_current_code(tmp_path: Path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR, mirror)

    def old_code(doc: dict) -> None:
        for f in doc["features"]:
            if f["properties"]["code_qp"] == "QN03307M":
                f["properties"]["insee_com"] = "33110"  # an old code of Bordeaux

    _rewrite(mirror / "qpv" / "qpv2024_complete_1584_derived.geojson", old_code)
    cache = tmp_path / "cache"
    sources.fetch_all(cache, mirror, progress=False)
    build.build_all(cache, tmp_path / "geo")
    q = load_layers(tmp_path / "geo").qpv.set_index("code_qp")
    assert list(q.loc["QN03307M", "communes"]) == ["33063"]
    assert "1 QPV sur une commune fusionnée" in " ".join(_status(tmp_path / "geo")["qpv"]["notes"])


def test_layers_read_without_polygons(mirror_built, tiny_geo_dir: Path):
    """``load_layers(polygons=False)`` (what the server holds): the polygon layers without
    their geometry, the same attribute columns; ``layer()`` and ``items()`` still give the
    full layers (the geographic exports), read again from disk; the other layers are whole."""
    from exchange_helpers import _one
    from territoires.catalogue.export import export_bytes
    from territoires.pipeline.layers import POLYGON_LAYERS
    from territoires.pipeline.territories import TerritoryIndex

    for geo in (mirror_built[0], tiny_geo_dir):
        full = load_layers(geo)
        light = load_layers(geo, polygons=False)
        assert light.light == frozenset(POLYGON_LAYERS) and not full.light
        for name in LAYER_SCHEMAS:
            held = getattr(light, name)
            if name in POLYGON_LAYERS:
                assert "geometry" not in held.columns and not isinstance(held, gpd.GeoDataFrame)
                pd.testing.assert_frame_equal(
                    held, pd.DataFrame(getattr(full, name).drop(columns="geometry")))
            else:
                assert list(held.geometry.to_wkb()) == list(getattr(full, name).geometry.to_wkb())
            again = light.layer(name)
            assert isinstance(again, gpd.GeoDataFrame) and again.crs == full.layer(name).crs
            pd.testing.assert_frame_equal(pd.DataFrame(again.drop(columns="geometry")),
                                          pd.DataFrame(full.layer(name).drop(columns="geometry")))
            assert list(again.geometry.to_wkb()) == list(full.layer(name).geometry.to_wkb())
        assert [n for n, _ in light.items()] == list(LAYER_SCHEMAS)
        assert all(isinstance(g, gpd.GeoDataFrame) for _, g in light.items())
        pd.testing.assert_frame_equal(TerritoryIndex.from_layers(light).table,
                                      TerritoryIndex.from_layers(full).table)
    # the geographic export of light layers is the export of the full ones
    index = TerritoryIndex.from_layers(load_layers(tiny_geo_dir))
    cat = _one()
    assert export_bytes(cat, "geojson", layers=load_layers(tiny_geo_dir, polygons=False),
                        index=index) == export_bytes(cat, "geojson",
                                                     layers=load_layers(tiny_geo_dir),
                                                     index=index)


def test_layers_without_polygons_check_their_files(tiny_geo_dir: Path):
    from territoires.errors import LayersMissingError

    communes = gpd.read_parquet(tiny_geo_dir / "communes.parquet")
    communes.to_crs("EPSG:2154").to_parquet(tiny_geo_dir / "communes.parquet")
    with pytest.raises(LayerError, match="EPSG:4326"):
        load_layers(tiny_geo_dir, polygons=False)
    (tiny_geo_dir / "communes.parquet").write_bytes(b"not parquet")
    with pytest.raises(LayerError, match="Lecture impossible"):
        load_layers(tiny_geo_dir, polygons=False)
    (tiny_geo_dir / "communes.parquet").unlink()
    with pytest.raises(LayersMissingError, match="communes"):
        load_layers(tiny_geo_dir, polygons=False)


def test_layer_rows_read_only_the_territories_asked(tiny_geo_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    """The geographic export of a selection decodes its territories' polygons only (the
    whole of France's communes took seconds per export once the server held none)."""
    from territoires.catalogue.export import export_bytes
    from territoires.pipeline import layers as layers_mod
    from territoires.pipeline.territories import TerritoryIndex

    full = load_layers(tiny_geo_dir)
    light = load_layers(tiny_geo_dir, polygons=False)
    codes = [*list(full.communes["code_insee"].astype(str))[:2], "99999"]
    for held in (full, light):
        got = held.rows("communes", codes)
        assert sorted(got["code_insee"]) == sorted(codes[:2])
        assert held.rows("communes", []).empty
    assert list(light.rows("communes", codes).geometry.to_wkb()) == list(
        full.rows("communes", codes).geometry.to_wkb())
    read: list[object] = []
    real = layers_mod._read
    monkeypatch.setattr(layers_mod, "_read", lambda *a, **k: read.append(k.get("filters"))
                        or real(*a, **k))
    from exchange_helpers import _one

    index = TerritoryIndex.from_layers(full)
    assert export_bytes(_one(), "geojson", layers=light, index=index) == export_bytes(
        _one(), "geojson", layers=full, index=index)
    assert read and all(f is not None for f in read), read  # filtered reads only

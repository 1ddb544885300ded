"""Tests of territoires.build on tiny raw fixtures in both formats (official and mirror),
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

from territoires import build, sources
from territoires.errors import LayerError
from territoires.layers import DISPLAY_LEVELS, LAYER_SCHEMAS, display_path, load_layers

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
    info = _status(geo)["communes"]
    assert info["with_polygon"] == 5 and info["origin"] == "mirror"
    assert "1 commune(s) fusionnée(s)" in " ".join(info["notes"])


def test_mirror_qpv_multi_commune_and_centroids(mirror_built):
    geo, _ = mirror_built
    q = load_layers(geo).qpv.set_index("code_qp")
    assert sorted(q.index) == ["QN02A01M", "QN03301I", "QN03307M", "QN03309M", "QN03312M",
                               "QN03317M"]
    assert list(q.loc["QN03309M", "communes"]) == ["33063", "33119"]
    assert q.loc["QN03309M", "geom_kind"] == "polygon"
    assert list(q.loc["QN03301I", "communes"]) == ["33069", "33162"]
    assert q.loc["QN03301I", "geom_kind"] == "centroid"
    # a multi-commune QPV's centroid parts are combined into one point
    pt = q.loc["QN03301I", "geometry"]
    assert pt.geom_type == "Point"
    assert (pt.x, pt.y) == pytest.approx((-0.59, 44.87))
    assert q["population"].isna().all()  # pop_QPV24 not in the mirror
    assert q.loc["QN03309M", "siren_epci"] == "243300316"
    info = _status(geo)["qpv"]
    assert (info["with_polygon"], info["with_centroid"], info["count"]) == (2, 4, 6)


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


def test_display_versions(mirror_built):
    geo, _ = mirror_built
    info = _status(geo)
    for name in build.POLYGON_LAYERS:
        for level in DISPLAY_LEVELS:
            path = display_path(name, level, geo)
            assert path.exists()
            assert info[name]["display_bytes"][level] == path.stat().st_size
            assert "simplif" in info[name]["simplification"][level]
            disp = gpd.read_parquet(path)
            assert list(disp.columns) == [*build.DISPLAY_COLUMNS[name], "geometry"]
            assert disp.geometry.is_valid.all()
            coords = shapely.get_coordinates(np.asarray(disp.geometry.values))
            assert np.allclose(coords * 1e5, np.round(coords * 1e5), atol=1e-6)
    assert info["communes"]["simplification"]["national"].startswith("coverage_simplify")


def test_display_falls_back_when_not_a_coverage():
    overlapping = gpd.GeoDataFrame(
        {"code_reg": ["1", "2"], "nom": ["a", "b"]},
        geometry=[Polygon([(0, 0), (1, 0), (1, 1), (0, 1)]),
                  Polygon([(0.5, 0), (1.5, 0), (1.5, 1), (0.5, 1)])], crs="EPSG:4326")
    disp, method = build.simplify_display(overlapping, "regions", 0.01)
    assert method.startswith("simplify(preserve_topology=True)")
    assert len(disp) == 2


def test_status_text_mentions_each_layer(mirror_built):
    geo, _ = mirror_built
    text = build.status_text(geo, geo.parent / "cache")
    for name in LAYER_SCHEMAS:
        assert f"- {name} :" in text
    assert "qpv : 6 entités (2 avec contour, 4 avec centroïde seulement)" in text
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
    assert len(q) >= 1490
    poly = q[q["geom_kind"] == "polygon"]
    assert len(poly) == 41
    for dep in ("33", "17", "64"):
        assert (q.loc[q["code_dep"] == dep, "geom_kind"] == "polygon").all(), dep
    assert q.loc["QN01701M", "geom_kind"] == "polygon"  # Mireuil
    assert q.loc["QN03317M", "geom_kind"] == "polygon"  # Génicart Est
    assert list(q.loc["QN03309M", "communes"]) == ["33063", "33119"]
    assert q.geometry.notna().all()


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
    assert len(layers.epci) == 1255 and len(layers.departements) == 101
    assert len(layers.regions) == 18


@pytest.mark.integration
def test_mirror_status(mirror_geo_dir: Path):
    text = build.status_text(mirror_geo_dir, mirror_geo_dir.parent / "cache")
    for name in LAYER_SCHEMAS:
        assert f"- {name} :" in text
    assert "qpv : " in text and "41 avec contour" in text


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

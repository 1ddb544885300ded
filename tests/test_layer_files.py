"""Reference geography served as files: written once, fetched by the layers."""

from __future__ import annotations

import json
from pathlib import Path

import folium
import pytest
import shapely

from app_env import tiny_catalogue
from territoires.analysis import maps
from territoires.app import assets, layer_files
from territoires.pipeline.layers import Layers


def _layer(n: int, shareable: bool = True, name: str = "Cenon") -> maps.CompactGeoJson:
    payload = maps.compact_rows([shapely.Point(-0.5 + i / 1000, 44.8) for i in range(n)],
                                {"nom": [name] * n, "code": [str(i) for i in range(n)]}, 4)
    layer = maps.CompactGeoJson(payload, "QPV", "{}")
    layer.shareable = shareable
    return layer


def _script(layer: maps.CompactGeoJson) -> str:
    fmap = folium.Map(tiles=None)
    layer.add_to(fmap)
    return fmap.get_root().render()


def test_shareable_payload_written_once_and_fetched(tmp_path: Path) -> None:
    big = _layer(2_000)
    group = folium.FeatureGroup(name="QPV")
    big.add_to(group)
    assert layer_files.externalise(group, static=tmp_path, base_path="/territoires/") == 1
    files = list((tmp_path / "layers").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text()) == big.rows
    assert files[0].stat().st_mode & 0o644 == 0o644  # served like any static file
    assert big.external == f"/territoires/app/static/layers/{files[0].name}"
    page = _script(big)
    assert f'"{big.external}"' in page and "fetch(url, " in page
    assert "__territoiresPending" in page  # or the fetch the map frame started
    assert json.dumps(big.rows["f"][0]) not in page  # the payload is not inline
    # the same geography again: the same file, not written again
    mtime = files[0].stat().st_mtime_ns
    again = _layer(2_000)
    assert layer_files.externalise(again, static=tmp_path) == 1
    assert again.external == f"/app/static/layers/{files[0].name}"
    assert files[0].stat().st_mtime_ns == mtime


def test_catalogue_layers_and_small_ones_stay_inline(tmp_path: Path) -> None:
    private = _layer(2_000, shareable=False)
    small = _layer(3)
    assert layer_files.externalise(private, static=tmp_path) == 0
    assert layer_files.externalise(small, static=tmp_path) == 0
    assert private.external is None and small.external is None
    assert not (tmp_path / "layers").exists()
    assert '"Cenon"' in _script(small) and "fetch(" not in _script(small)


def test_unwritable_folder_leaves_the_layer_inline(tmp_path: Path) -> None:
    (tmp_path / "layers").write_text("not a folder")
    layer = _layer(2_000)
    assert layer_files.externalise(layer, static=tmp_path) == 0
    assert layer.external is None and "fetch(" not in _script(layer)


def test_only_reference_geography_is_shareable(tiny_layers: Layers) -> None:
    """Outlines, points and a choropleth's geometry may become files; initiatives (catalogue
    text) never; a choropleth whose rows follow the values (France's communes with
    something to show) neither, or every filter would write a new file."""
    import geopandas as gpd
    import pandas as pd

    gdf = gpd.GeoDataFrame({"code_insee": ["33119", "33063"], "nom": ["Cenon", "Bordeaux"]},
                           geometry=[shapely.box(-0.53, 44.85, -0.50, 44.87),
                                     shapely.box(-0.60, 44.82, -0.55, 44.86)], crs=4326)
    outline = maps._outline_layer(gdf, "commune", "Communes", {"color": "#000"})
    points = maps._points_layer(gdf, "commune", "Communes", "#000", 3)
    assert outline is not None and outline.shareable and points is not None and points.shareable
    values = pd.DataFrame({"code": ["33119", "33063"], "initiatives": [1, 0],
                           "funding_eur": [10.0, 0.0], "funding_per_inhabitant": [1.0, 0.0]})
    area = maps.Area(frozenset({"33119", "33063"}), frozenset())
    layer, _ = maps._choropleth_layer(gdf, "commune", values, "initiatives", area)
    assert layer is not None and layer.shareable
    assert [r[:2] for r in layer.rows["f"]] == [["Cenon", "33119"], ["Bordeaux", "33063"]]
    assert layer.value_rows["k"][:3] == ["k", "c", "ini"] and len(layer.value_rows["f"]) == 2
    national, _ = maps._choropleth_layer(gdf, "commune", values, "initiatives", maps.Area())
    assert national is not None and not national.shareable
    cluster, _ = maps._initiatives_layer(
        maps.initiative_points(tiny_catalogue(), maps.territory_points(dict(tiny_layers.items()))),
        "theme", "/")
    assert not any(getattr(e, "shareable", False) for e in assets.walk(cluster))


def test_reference_layers_are_kept_built_in_the_frame(tmp_path: Path) -> None:
    """A layer served as a file is built once per map frame (``__territoiresLayers``), under a
    key of its file and options; a layer with values (a choropleth) too, its features given
    the values of each redraw (``__revalue``)."""
    first, second = _layer(2_000), _layer(2_000)
    other = maps.CompactGeoJson(first.rows, "QPV", "{smoothFactor:2}")
    other.shareable = True
    for layer in (first, second, other):
        layer_files.externalise(layer, static=tmp_path)
    assert first.reuse_key and first.reuse_key == second.reuse_key
    assert other.reuse_key not in (None, first.reuse_key)  # same file, other options
    assert f"window.__territoiresLayers[{first.reuse_key_js}]" in _script(first)
    with_values = maps.CompactGeoJson(first.rows, "QPV", "{}",
                                      values={"k": ["k"], "f": [[0]] * 2_000})
    with_values.shareable = True
    layer_files.externalise(with_values, static=tmp_path)
    # kept apart from the same file's reference layer (which has no __revalue)
    assert with_values.external and with_values.reuse_key not in (None, first.reuse_key)
    script = _script(with_values)
    assert f"window.__territoiresLayers[{with_values.reuse_key_js}]" in script
    assert ".__revalue(" in script and "__revalue" not in _script(first)
    assert script.count(with_values.values) == 1  # the values are sent once
    assert _layer(3).reuse_key is None  # inline


def test_prune_removes_the_served_files_only(tmp_path: Path) -> None:
    assert layer_files.prune(static=tmp_path) == 0  # no folder yet
    assert layer_files.externalise(_layer(2_000), static=tmp_path) == 1
    folder = tmp_path / "layers"
    (folder / ".tmp-abc.json").write_text("{")  # a write cut short
    (folder / "README").write_text("not ours")
    (tmp_path / "vendor.json").write_text("{}")  # beside the folder
    assert layer_files.prune(static=tmp_path) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["README"]
    assert (tmp_path / "vendor.json").is_file()


def test_data_build_prunes_the_files_of_the_older_layers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A rebuild leaves the files of the older geography unused: the command removes them."""
    from territoires import cli
    from territoires.pipeline import build

    monkeypatch.setenv("TERRITOIRES_STATIC_DIR", str(tmp_path / "static"))
    monkeypatch.setenv("TERRITOIRES_GEO_DIR", str(tmp_path / "geo"))
    monkeypatch.delenv("TERRITOIRES_MIRROR", raising=False)
    assert layer_files.externalise(_layer(2_000), static=tmp_path / "static") == 1
    from territoires.app import map_documents

    map_documents.publish(map_documents.MapDocument.of("<p>carte</p>"), static=tmp_path / "static")

    class Report:
        def describe(self) -> str:
            return "couches construites"

    monkeypatch.setattr(build, "build_all", lambda cache, geo: Report())
    assert cli.main(["data", "build"]) == 0
    out = capsys.readouterr().out
    assert "1 fichier(s) de couches et 1 carte(s) servis" in out
    assert list((tmp_path / "static" / "layers").glob("*.json")) == []
    assert list((tmp_path / "static" / "maps").glob("*.html")) == []  # they name the files

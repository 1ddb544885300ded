"""Maps in a real browser (Debian's chromium through Playwright): national layers drawn as
polygons on an area, the naive baseline map drawing, the Fiche map of a QPV known by a
point. Server helpers are kept minimal here (tests/test_browser.py has its own)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import requests
from shapely.geometry import MultiPoint

from app_env import make_env, tiny_catalogue
from catalogue_factory import initiative, make_catalogue
from territoires.analysis import maps
from territoires.pipeline.layers import Layers
from tiny import make_layers

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Ports of this test module (one server at a time).
PORTS = range(8620, 8630)

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("chromium absent (/usr/bin/chromium)", allow_module_level=True)

ASSETS = Path(os.environ.get("TERRITOIRES_WEB_ASSETS", REPO / ".cache" / "webassets"))
NPM_PACKAGES = {"leaflet": "1.9.3", "leaflet.markercluster": "1.1.0"}


def _assets() -> dict[str, Path]:
    """Local copies of the CDN files of a folium page (``npm pack``, jQuery from Debian)."""
    for name, version in NPM_PACKAGES.items():
        folder = ASSETS / f"{name}-{version}"
        if not folder.exists():
            ASSETS.mkdir(parents=True, exist_ok=True)
            subprocess.run(["npm", "pack", f"{name}@{version}"], cwd=ASSETS, check=True,
                           capture_output=True, timeout=180)
            tmp = ASSETS / f"tmp-{name}"
            tmp.mkdir(exist_ok=True)
            subprocess.run(["tar", "xzf", str(ASSETS / f"{name}-{version}.tgz"), "-C",
                            str(tmp)], check=True)
            (tmp / "package").rename(folder)
            tmp.rmdir()
    leaflet = ASSETS / "leaflet-1.9.3" / "dist"
    cluster = ASSETS / "leaflet.markercluster-1.1.0" / "dist"
    return {
        "leaflet@1.9.3/dist/leaflet.js": leaflet / "leaflet.js",
        "leaflet@1.9.3/dist/leaflet.css": leaflet / "leaflet.css",
        "markercluster/1.1.0/leaflet.markercluster.js": cluster / "leaflet.markercluster.js",
        "markercluster/1.1.0/MarkerCluster.css": cluster / "MarkerCluster.css",
        "markercluster/1.1.0/MarkerCluster.Default.css": cluster / "MarkerCluster.Default.css",
        "jquery-3.7.1.min.js": Path("/usr/share/javascript/jquery/jquery.min.js"),
    }


def _port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@contextmanager
def _serve(root: Path, env_vars: dict[str, str]) -> Iterator[str]:
    """``streamlit run app.py`` on a loopback port with ``env_vars``."""
    env = {**os.environ, **env_vars}
    port = _port()
    log = (root / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
         "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/_stcore/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None:
                raise RuntimeError((root / "streamlit.log").read_text())
            time.sleep(0.5)
        else:
            raise RuntimeError("Streamlit did not become healthy in 90 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A browser context: map libraries from local copies, other outside requests refused."""
    from playwright.sync_api import sync_playwright

    assets = _assets()

    def route(r) -> None:
        url = r.request.url
        if url.startswith("http://127.0.0.1"):
            r.continue_()
            return
        for suffix, path in assets.items():
            if url.endswith(suffix) and path.exists():
                r.fulfill(path=str(path))
                return
        if url.split("?")[0].endswith((".js", ".css")):
            r.fulfill(status=200, body="", content_type="text/plain")
            return
        r.abort()

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = b.new_context(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
        context.route("**/*", route)
        yield context
        context.close()
        b.close()


def _map_frame(page, timeout: int = 120_000):
    """The folium iframe of the page, once its layer control is drawn."""
    frame_el = page.locator("iframe[title*='streamlit_folium']").first
    frame_el.wait_for(timeout=timeout)
    frame_el.content_frame.locator(".leaflet-control-layers-overlays").wait_for(
        state="attached", timeout=timeout)
    return frame_el


_QPV_DRAWN = """() => {
    const out = {};
    window.map.eachLayer(l => {
        if (l.feature && l.feature.properties && l.feature.properties.lvl === 'qpv') {
            const t = l.feature.geometry.type;
            out[t] = (out[t] || 0) + 1;
        }
    });
    return out; }"""


@pytest.mark.integration
def test_carte_seine_saint_denis_draws_qpv_polygons(mirror_geo_dir: Path, browser,
                                                    tmp_path: Path) -> None:
    """On the national layers built from the mirror, Carte on Seine-Saint-Denis draws its
    QPV as polygons, not circles."""
    qpv = gpd.read_parquet(mirror_geo_dir / "qpv.parquet")
    expected = int((qpv["code_dep"] == "93").sum())
    assert expected > 30
    env = make_env(tmp_path, make_layers(), tiny_catalogue())  # geo/ replaced below
    env["TERRITOIRES_GEO_DIR"] = str(mirror_geo_dir)
    with _serve(tmp_path, env) as base:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/carte?t=departement:93&niveau=commune")
        frame_el = _map_frame(page)
        drawn = frame_el.element_handle().content_frame().evaluate(_QPV_DRAWN)
        polygons = drawn.get("Polygon", 0) + drawn.get("MultiPolygon", 0)
        assert polygons == expected, drawn  # Joncherolles (on old Pierrefitte) included
        assert drawn.get("Point", 0) == 0, drawn
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "carte_seine_saint_denis.png"), full_page=True)
        assert errors == []
        page.close()


def test_naive_map_draws_in_leaflet(tiny_layers: Layers, browser) -> None:
    """The benchmark's naive baseline draws, MultiPoint cités included (it used to throw
    "t.getElement is not a function")."""
    cites = tiny_layers.cites_educatives.copy()
    cites.loc[0, "geometry"] = MultiPoint([(-0.585, 44.845), (-0.575, 44.85)])
    layers = {"communes": tiny_layers.communes, "qpv": tiny_layers.qpv,
              "cites_educatives": gpd.GeoDataFrame(cites, geometry="geometry",
                                                   crs=tiny_layers.cites_educatives.crs)}
    markers = pd.DataFrame({"lat": [44.84], "lon": [-0.58], "title": ["Une <b>fiche</b>"]})
    html = maps.map_html(maps.naive_map(layers, markers))
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_content(html, wait_until="load")
    page.wait_for_timeout(500)
    assert errors == []
    # every point is a marker: 2 (multipoint) + 2 cités + the initiative + QN09301M
    assert page.locator(".leaflet-marker-icon").count() == 6
    assert page.locator("path.leaflet-interactive").count() >= len(tiny_layers.communes)
    page.close()


def test_fiche_map_of_a_qpv_known_by_a_point(tiny_layers: Layers, browser,
                                            tmp_path: Path) -> None:
    """The Fiche map of an initiative whose only territory is a QPV known by its centroid
    (its commune without contour) draws (it used to fail: "Invalid LatLng (NaN, NaN)")."""
    communes = tiny_layers.communes.copy()
    communes.loc[communes["code_insee"] == "93066", "geometry"] = None
    layers = Layers(**{**dict(tiny_layers.items()), "communes": communes})
    catalogue = make_catalogue([
        initiative("quartier-nord", [("qpv", "QN09301M")], title="Lecture au Quartier Nord",
                   themes=["culture"], porteurs=[("Ville de Saint-Denis", "collectivite")]),
    ], [])
    with _serve(tmp_path, make_env(tmp_path, layers, catalogue)) as base:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/fiche?id=quartier-nord")
        frame_el = _map_frame(page, timeout=60_000)
        frame = frame_el.element_handle().content_frame()
        page.wait_for_timeout(1000)
        centre = frame.evaluate("() => { const c = window.map.getCenter(); "
                                "return [c.lat, c.lng, window.map.getZoom()]; }")
        assert centre[0] == pytest.approx(48.945, abs=0.01)
        assert centre[1] == pytest.approx(2.36, abs=0.01)
        assert 5 <= centre[2] <= 18
        drawn = frame.evaluate(_QPV_DRAWN)
        assert drawn.get("Point", 0) >= 1
        assert not [e for e in errors if "LatLng" in e], errors
        page.close()


"""Map payload and Carte page server time on the real built layers.

Usage: ``.venv/bin/python bench/bench_map.py [--geo DIR] [--initiatives N] [--funding N]
[--repeat R]``

1. HTML payload of the map (UTF-8 bytes the browser receives) for the national view, the
   Gironde (33) view and the Seine-Saint-Denis (93, dense with QPV) view, against the naive
   map of the same view built in the same run (:func:`territoires.analysis.maps.naive_map`: every
   full
   layer of geo/*.parquet with all its properties in a ``folium.GeoJson``, one
   ``folium.Marker`` per initiative point), with the seed catalogue and a synthetic one.
   Goal: <= 1 MB and >= 5x smaller. Beside the bytes, the time Debian's chromium takes to
   load and draw each page (ours and naive, map libraries served locally, tiles refused),
   and the JavaScript errors it raised (there must be none: the naive map draws too).
2. Server time (Streamlit AppTest, whole script run without the browser) of the Carte page:
   cold start to first map (empty caches), then a filter change (territory = Gironde) and a
   measure change, at seed scale (data/initiatives) and at national synthetic scale
   (bench/synthetic.py, when present).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from territoires.analysis import maps, queries  # noqa: E402
from territoires.catalogue import storage  # noqa: E402
from territoires.catalogue.seeds import load_seed_dir  # noqa: E402
from territoires.pipeline import layers as layers_mod  # noqa: E402
from territoires.pipeline.territories import TerritoryIndex  # noqa: E402

APP = str(REPO / "app.py")


def size(n: int) -> str:
    """Bytes as "123.4 kB"."""
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def naive_layers(full: layers_mod.Layers, area: maps.Area) -> dict:
    """The full (unsimplified) layers of a view, with all their properties: régions,
    départements, communes of the area, QPV polygons, QPV centroids, contrats de ville and
    cités éducatives (of the area's départements when a territory is selected)."""
    qpv = full.qpv
    cv, cites = full.contrats_ville, full.cites_educatives
    out = {"regions": full.regions, "departements": full.departements}
    if not area.national:
        communes = area.communes or frozenset()
        deps = {maps._dep_of(c) for c in communes}
        out["communes"] = full.communes[full.communes["code_insee"].isin(communes)]
        qpv = qpv[qpv["code_qp"].isin(area.qpv or frozenset())]
        cv = cv[cv["code_dep"].isin(deps)]
        cites = cites[cites["code_dep"].isin(deps)]
    poly = qpv["geom_kind"] == "polygon"
    out.update({"qpv_polygons": qpv[poly], "qpv_centroids": qpv[~poly],
                "contrats_ville": cv, "cites_educatives": cites})
    return out


VIEWS = (
    ("national, départements", (), "departement"),
    ("Gironde (33), communes", (("departement", "33"),), "commune"),
    ("Seine-Saint-Denis (93), communes", (("departement", "93"),), "commune"),
)


def bench_payload(geo: Path, index: TerritoryIndex, catalogue, render=None) -> None:
    """Print payload sizes (UTF-8 bytes of the HTML) of our map and of the naive one, and
    their render times in chromium when ``render`` (see :class:`Renderer`) is given."""
    full = layers_mod.load_layers(geo)
    national = {n: layers_mod.load_display(n, "national", geo)
                for n in ("regions", "departements", "epci", "communes", "qpv")}
    local = {n: layers_mod.load_display(n, "local", geo)
             for n in ("regions", "departements", "epci", "communes", "qpv")}
    for display in (national, local):
        display["qpv"] = maps.with_qpv_centroids(display["qpv"], full.qpv)
    for extra in ("contrats_ville", "cites_educatives"):
        national[extra] = local[extra] = full.layer(extra)
    points = maps.territory_points(national)
    print(f"== map payload (HTML bytes), {len(catalogue)} initiatives ==")
    print(f"{'view':<34} {'ours':>10} {'naive':>10} {'ratio':>7}  build s  points"
          + ("   render ours / naive (ms), JS errors" if render else ""))
    for label, territories, level in VIEWS:
        t0 = time.perf_counter()
        filters = queries.Filters(territories=territories)
        sel = queries.select(catalogue, index, filters)
        area = maps.area_from_filters(territories, index)
        ini = maps.initiative_points(sel.catalogue, points)
        spec = maps.MapSpec(area=area, choropleth_level=level, measure="funding_eur",
                            values=queries.aggregate(sel, index, level), initiatives=ini)
        ours_html = maps.map_html(maps.build_map(national, local, spec))
        seconds = time.perf_counter() - t0
        naive_html = maps.map_html(maps.naive_map(naive_layers(full, area), ini))
        ours, naive = len(ours_html.encode()), len(naive_html.encode())
        line = (f"{label:<34} {size(ours):>10} {size(naive):>10} {naive / ours:6.1f}x  "
                f"{seconds:7.2f}  {len(ini):>6}")
        if render is not None:
            (t_ours, e_ours), (t_naive, e_naive) = render(ours_html), render(naive_html)
            line += (f"   {t_ours:8.0f} / {t_naive:8.0f}   {e_ours or 'aucune'} / "
                     f"{e_naive or 'aucune'}")
        print(line, flush=True)


ASSETS = REPO / ".cache" / "webassets"
NPM_PACKAGES = {"leaflet": "1.9.3", "leaflet.markercluster": "1.1.0"}


def web_assets() -> dict[str, Path]:
    """Local copies of the map libraries the folium page loads from CDNs (offline here):
    ``npm pack`` into the git-ignored .cache/webassets, jQuery from Debian."""
    import subprocess

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


class Renderer:
    """Debian's chromium (headless, Playwright) loading a map page: ``renderer(html)`` ->
    (milliseconds from loading the page to two animation frames after its load event,
    JavaScript errors). CDN files are served from local copies, everything else refused."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._assets = web_assets()
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        self._context = self._browser.new_context(viewport={"width": 1200, "height": 800})
        self._context.route("**/*", self._route)

    def _route(self, r) -> None:
        url = r.request.url
        for suffix, path in self._assets.items():
            if url.endswith(suffix) and path.exists():
                r.fulfill(path=str(path))
                return
        if url.split("?")[0].endswith((".js", ".css")):
            r.fulfill(status=200, body="", content_type="text/plain")
            return
        r.abort()

    def __call__(self, html: str, timeout_ms: float = 600_000) -> tuple[float, str]:
        page = self._context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc).splitlines()[0][:80]))
        t0 = time.perf_counter()
        page.set_content(html, wait_until="load", timeout=timeout_ms)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => "
                      "requestAnimationFrame(r)))")
        ms = (time.perf_counter() - t0) * 1000
        page.close()
        return ms, "; ".join(sorted(set(errors)))

    def close(self) -> None:
        """Stop chromium."""
        self._context.close()
        self._browser.close()
        self._pw.stop()


def bench_server(label: str, repeat: int) -> None:
    """Print AppTest server times of the Carte page."""
    from streamlit.testing.v1 import AppTest

    print(f"\n== Carte page server time, {label} (ms) ==")
    t0 = time.perf_counter()
    at = AppTest.from_file(APP, default_timeout=600)
    at.switch_page("pages/carte.py")
    at.run()
    cold = (time.perf_counter() - t0) * 1000
    problem = "" if not (at.exception or at.error) else "ERREUR: " + "; ".join(
        str(e.value)[:120] for e in [*at.exception, *at.error])
    print(f"cold start to first map (national view): {cold:8.0f}  {problem}", flush=True)
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        at.run()
        warm.append((time.perf_counter() - t0) * 1000)
    print(f"rerun, same filters (median of {repeat}): {statistics.median(warm):8.0f}")
    timings = []
    for i in range(repeat):
        labels = [o for o in at.multiselect(key="flt_t").options if o.startswith("Gironde (33)")]
        t0 = time.perf_counter()
        at.multiselect(key="flt_t").set_value(labels if i % 2 == 0 else []).run()
        timings.append((time.perf_counter() - t0) * 1000)
    print(f"filter change (Gironde <-> France), median: {statistics.median(timings):8.0f}")
    timings = []
    for i in range(repeat):
        labels = [o for o in at.multiselect(key="flt_t").options
                  if o.startswith("Seine-Saint-Denis (93)")]
        t0 = time.perf_counter()
        at.multiselect(key="flt_t").set_value(labels if i % 2 == 0 else []).run()
        timings.append((time.perf_counter() - t0) * 1000)
    print(f"filter change (93 <-> France), median:     {statistics.median(timings):8.0f}")
    at.multiselect(key="flt_t").set_value(
        [o for o in at.multiselect(key="flt_t").options if o.startswith("Gironde (33)")]).run()
    timings = []
    for i in range(repeat):
        t0 = time.perf_counter()
        at.radio(key="prm_mesure").set_value(
            "funding_eur" if i % 2 == 0 else "initiatives").run()
        timings.append((time.perf_counter() - t0) * 1000)
    print(f"measure change in Gironde, median:        {statistics.median(timings):8.0f}")


class _FakeStore:
    """Stands for :class:`territoires.catalogue.storage.Store`: serves an in-memory catalogue."""

    catalogue = None

    def __init__(self, url: str, **_: object) -> None:
        self.url = url

    def load_catalogue(self):
        return _FakeStore.catalogue


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--geo", default=str(REPO / "geo"))
    parser.add_argument("--initiatives", type=int, default=50_000)
    parser.add_argument("--funding", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true",
                        help="bytes only, no render time in chromium")
    parser.add_argument("--no-synthetic", action="store_true",
                        help="seed catalogue only")
    args = parser.parse_args()
    geo = Path(args.geo)
    if not (geo / "layers.json").exists():
        print(f"geo/ pas construit ({geo}) : lancez « territoires data fetch » puis "
              "« territoires data build » (TERRITOIRES_MIRROR=/work/shared/data).")
        raise SystemExit(1)
    os.environ["TERRITOIRES_GEO_DIR"] = str(geo.resolve())
    t0 = time.perf_counter()
    index = TerritoryIndex.from_layers(layers_mod.load_layers(geo))
    print(f"layers + index: {time.perf_counter() - t0:.1f} s")
    seeds = load_seed_dir(REPO / "data" / "initiatives")
    render = None if args.no_browser else Renderer()
    synthetic = None
    try:
        bench_payload(geo, index, seeds, render)
        if not args.no_synthetic:
            from synthetic import make_synthetic

            synthetic = make_synthetic(index, args.initiatives, args.funding, seed=0)
            bench_payload(geo, index, synthetic, render)
    finally:
        if render is not None:
            render.close()

    tmp = Path(tempfile.mkdtemp(prefix="territoires-bench-map-"))
    url = f"sqlite:///{tmp / 'seeds.sqlite'}"
    store = storage.Store(url)
    store.create_or_upgrade()
    store.upsert(seeds)
    store.dispose()
    os.environ["TERRITOIRES_DATABASE_URL"] = url
    bench_server(f"seed scale ({len(seeds)} fiches)", args.repeat)

    if synthetic is None:
        return
    _FakeStore.catalogue = synthetic
    storage.Store = _FakeStore  # type: ignore[misc,assignment]
    os.environ["TERRITOIRES_DATABASE_URL"] = f"sqlite:///{tmp / 'synthetic.sqlite'}"
    bench_server(f"synthetic ({args.initiatives} initiatives, {args.funding} lines)",
                 args.repeat)


if __name__ == "__main__":
    main()

"""What a user feels: chromium (Playwright) against a real ``territoires serve`` server.

Usage: ``.venv/bin/python bench/bench_browser.py [--scales seed,50k] [--repeat 3]
[--clients 20] [--port 8640] [--geo DIR] [--launch serve|streamlit-run]``

For each scale (``seed``: the fiches of ``data/initiatives``; ``50k``: 50,000 synthetic
initiatives of :func:`synthetic.make_synthetic` written once to ``bench/out/``, git-ignored),
the script starts the app (``territoires serve``, which fills the caches before the server
listens; ``--launch streamlit-run``: plain ``streamlit run app.py``, the baseline) and, in the
same run, a bare Streamlit page showing the same catalogue table with ``st.dataframe`` (the
floor no Streamlit app can beat; the first 500 rows, the Catalogue page's page size), and prints:

- the map floor: the Carte's national map alone (a title, the map, the footer: no sidebar,
  no widget; drawn by the app's own code, ``MAP_FLOOR_PAGE``, served on ``--port + 3``):
  map drawn, and its ratio to the bare page; each page with a map is then read against it
  too (visited after each visit of the page): what the page around the map costs;
- fresh server: process start -> healthy, then the first visit of Carte -> map drawn;
- per page, warm (medians of ``--repeat`` visits in new tabs): navigation -> content settled
  (footer drawn, no script running, no element waiting for its code, every table and chart
  shown drawn, for 250 ms) and -> map drawn (Leaflet map with its layer control in the map's frame,
  its layer files fetched and drawn), websocket bytes received and the largest frame, the
  ratios to the bare page's settled time (the bare page visited again after each visit of
  the page, these ratios to the median of those visits, printed beside); and, as in runs
  before December 2026, the time
  to the footer alone (the bare page's table is drawn 0.3-0.4 s after its footer) and its
  ratio to the bare page's footer;
- in the app: from Accueil, a click on the menu's link to Carte, Catalogue, Couverture ->
  page settled and map drawn (the way users move between pages: no new document);
- Carte: change of the measure (a page choice) and of the theme filter (sidebar: from the
  Enter that applies the typed theme; and with the typing) -> map redrawn; the bytes and
  largest frame of the change. Interactions are timed in the page, from the time stamp of
  the gesture's first input event (pointer down, key down) to the frame where the map is
  seen redrawn or the page settled: the driver's own work before the event (Playwright
  waits for the element to be visible and stable) is not the user's wait; the time from
  the driver's call, as in runs before December 2026, is printed beside it;
- server RSS after the first session, after the page visits, after ``--clients`` concurrent
  first visits (Python websocket clients speaking Streamlit's protocol, not 20 chromium
  tabs), whose median and max time to the script's end are printed.

Layers: ``--geo``, else ``geo/`` if built, else built from the mirror. Ports: ``--port``,
``--port + 1`` (the bare page) and ``--port + 3`` (the map floor). ``--app DIR`` measures
another copy of the app (before/after: ``git archive <commit> | tar -x -C DIR``);
``--compare DIR`` serves that copy beside this one
(``--port + 2``) and visits the pages with a map on each in turn, A then B, so that the
machine's noise falls on both alike.

The browser is offline (host names do not resolve; the servers are reached at 127.0.0.1) and
keeps its HTTP cache, as a returning user's does: the fresh server's first visit is a new
browser profile (nothing cached), the warm visits find Streamlit's scripts in the cache.
Runs before December 2026 routed every request through Playwright, which turns the cache
off: ``--route`` does that again (an older app that takes Leaflet from a CDN needs it).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(Path(__file__).resolve().parent))

sys.path.insert(0, str(REPO / "tests"))

from browser_support import ARGS, CHROMIUM, process  # noqa: E402
from common import SEED_FIRST_ID, built_geo_dir, seed_db, synthetic_db  # noqa: E402
from territoires.app.serve import rss_mb  # noqa: E402

BARE_PAGE = '''"""Floor of the benchmark: the catalogue table (its first 500 rows, one page of the
Catalogue page: all 50,000 rows would be a 36 MB frame), nothing else."""
import streamlit as st

from territoires import config
from territoires.catalogue.storage import Store


@st.cache_resource
def catalogue():
    return Store(config.database_url()).load_catalogue()


st.set_page_config(page_title="Bare", layout="wide")
st.title("Catalogue")
ini = catalogue().initiatives.head(500)
cols = [c for c in ini.columns if ini[c].map(lambda v: isinstance(v, (str, int, float))
                                             or v is None).all()]
st.dataframe(ini[cols], hide_index=True)
st.caption("Sources : ANCT (floor page)")
'''

#: The map's floor: the Carte's national map alone (a title, the map, the footer; no
#: sidebar, no widget), drawn by the app's own code, served beside the app. The pages with
#: a map read against it too: what the map itself costs, apart from what the page around it
#: costs.
MAP_FLOOR_PAGE = '''"""Floor of the benchmark's maps: the Carte's national map, nothing else."""
import streamlit as st

from territoires.analysis import maps
from territoires.app import ui

st.set_page_config(page_title="Map floor", layout="wide")
st.title("Carte")
data = ui.app_data()
filters = ui.current_filters()
area = maps.area_from_filters(filters.territories, data.index)
level = ui.carte_default_level(filters, area)
ui.carte_map(data, filters, level, ui.CARTE_MEASURE, ui.CARTE_COLOUR,
             shown=ui.carte_data(data, filters, level))
st.caption("Sources : ANCT (map floor)")
'''


def map_floor_script(app: Path) -> Path:
    """The map floor's script in ``bench/out/map_floor/``, beside the app's static folder
    (a link: Leaflet, the layer files) and Streamlit settings (static serving on)."""
    folder = OUT / "map_floor"
    (folder / ".streamlit").mkdir(parents=True, exist_ok=True)
    static = folder / "static"
    if static.is_symlink() or static.exists():
        static.unlink()
    static.symlink_to((app / "static").resolve(), target_is_directory=True)
    (folder / ".streamlit" / "config.toml").write_text(
        (app / ".streamlit" / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    script = folder / "map_floor.py"
    script.write_text(MAP_FLOOR_PAGE, encoding="utf-8")
    return script


#: The bare page is served as well as Streamlit can (as territoires serve serves the app).
BARE_OPTIONS = ("--server.fileWatcherType", "none", "--runner.postScriptGC", "false")

#: JS: times (ms since navigation start, or since ``t0``, a performance.now() taken at a
#: click in the app) when the page settled and the map was drawn; with ``title``, the
#: page of that browser title (after a click: the new page, not the one left).
TIMES_JS = """async ([needMap, limit, title, t0]) => {
  t0 = t0 || 0;
  if (t0) window.__benchMapDrawn = null;  // after a click: a map drawn from now on
  while (title && !document.title.startsWith(title))
    await new Promise(r => requestAnimationFrame(r));
  // the footer is there, no script runs, and what loads late is drawn: no element still
  // waiting for its code (Streamlit's skeleton), every table and chart drawn
  // (textContent of the captions, not the body's innerText: that forced a layout of the
  // whole page at every frame, 1 ms a frame on Carte, charged to the page measured)
  const footer = () => !document.querySelector('[data-testid="stStatusWidget"]')
      && [...document.querySelectorAll('[data-testid="stCaptionContainer"]')].some(
           e => e.textContent.startsWith('Sources : ANCT'));
  // (a table in a closed expander or another tab is not drawn: only the ones shown)
  const every = (sel, inner) => [...document.querySelectorAll(sel)].every(
      e => !e.getClientRects().length || e.querySelector(inner));
  // by default, the first view of a map page sends its menu and widgets
  // after its map, saying so in the sidebar meanwhile (ui.DEFERRED_NOTE)
  const undeferred = () => ![...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
      .some(e => e.textContent.startsWith('Chargement du menu et des filtres'));
  const settled = () => footer() && undeferred()
      && !document.querySelector('[data-testid="stSkeleton"]')
      && every('[data-testid="stDataFrame"]', 'canvas')
      && every('[data-testid="stVegaLiteChart"]', 'canvas, svg');
  const mapDrawn = () => [...document.querySelectorAll('iframe')].some(f => {
      try { const w = f.contentWindow; return w && w.map && !w.__benchOld
            && w.document.querySelector('.leaflet-control-layers')
            && !(w.__territoiresLoading > 0)
            && Object.keys(w.map._layers).length > 1; } catch (e) { return false; } });
  // a static map's document (sandboxed: another origin, another process) says when it is
  // drawn (MAP_REPORT_JS), at its own time
  const posted = () => window.__benchMapDrawn != null ? window.__benchMapDrawn - t0 : null;
  // Couverture draws no map when every territory is reached (the 50k catalogue)
  const noMap = () => document.body.textContent.includes('Toute la zone filtrée est touchée');
  let since = null, tSettled = null, tMap = needMap ? null : t0, tFooter = null;
  const start = performance.now();
  while (performance.now() - start < limit) {
    const now = performance.now();
    if (tMap === null && posted() !== null) tMap = posted() + t0;
    if (tMap === null && mapDrawn()) tMap = now;
    if (tFooter === null && footer()) tFooter = now;
    if (settled()) { if (since === null) since = now;
                     if (now - since >= 250 && tSettled === null) tSettled = since; }
    else since = null;
    if (tSettled !== null && (tMap !== null || noMap())) break;
    await new Promise(r => requestAnimationFrame(r));
  }
  return [tSettled, tMap, tFooter].map(t => t === null ? null : t - t0);
}"""

#: JS run in every document and frame before its scripts: a map frame (window.map, its
#: layer control, no layer file loading, layers drawn) posts to the page the time it was
#: drawn, once; the page keeps the first (``window.__benchMapDrawn``, ms since its own
#: navigation start). A static map's document is sandboxed (an origin of its own): the
#: page cannot look into it as into the Carte's component frame.
MAP_REPORT_JS = """(() => {
  if (window === window.top) {
    window.__benchMapDrawn = null;
    addEventListener('message', e => {
      if (e.data && e.data.__benchMapDrawn && window.__benchMapDrawn === null)
        window.__benchMapDrawn = e.data.__benchMapDrawn - performance.timeOrigin; });
    return;
  }
  const drawn = () => window.map && window.map._layers
      && document.querySelector('.leaflet-control-layers')
      && !(window.__territoiresLoading > 0) && Object.keys(window.map._layers).length > 1;
  const poll = () => { if (drawn()) parent.postMessage(
        {__benchMapDrawn: performance.timeOrigin + performance.now()}, '*');
      else requestAnimationFrame(poll); };
  requestAnimationFrame(poll);
})()"""

#: JS: from now on, ``window.__benchInput`` is the time stamp (ms since navigation start) of
#: the first input event (pointer down, key down) that reaches the page: the user's gesture,
#: not the driver's work before it (Playwright waits for the element to be stable and
#: visible before it clicks: 100-250 ms on a busy page of these machines).
ARM_INPUT_JS = """() => { window.__benchInput = null;
  if (!window.__benchArmed) { window.__benchArmed = true;
    const first = e => { if (e.isTrusted && window.__benchInput === null)
                           window.__benchInput = e.timeStamp; };
    for (const t of ['pointerdown', 'keydown']) window.addEventListener(t, first, true); } }"""

MARK_OLD_JS = """() => { document.querySelectorAll('iframe').forEach(f => {
  try { f.contentWindow.__benchOld = true;
        f.contentWindow.__benchDraws = f.contentWindow.__territoiresDraws || 0; }
  catch (e) {} }); }"""

REDRAWN_JS = """(legend) => [...document.querySelectorAll('iframe')].some(f => {
  try { const w = f.contentWindow; if (!w || !w.map) return false;
        const l = w.document.querySelector('.territoires-legend');
        return w.document.querySelector('.leaflet-control-layers')
            && !(w.__territoiresLoading > 0)
            && (!w.__benchOld || (legend && l && l.innerText.includes(legend))
                || (w.__territoiresDraws || 0) > (w.__benchDraws || 0)); }
  catch (e) { return false; } })"""


#: JS: the time the map frame took to swap in the layers of its last draw (ms), if it says
#: (``window.__territoiresLastDraw``)
SWAP_MS_JS = """() => { for (const f of document.querySelectorAll('iframe')) {
  try { const d = f.contentWindow.__territoiresLastDraw; if (d) return d.ms; }
  catch (e) {} } return null; }"""


#: Chromium offline without request routing: every host name fails to resolve, the app's
#: server is reached by its address (127.0.0.1).
OFFLINE_ARGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def offline_browser(p: object, route: bool = False) -> tuple[object, object]:
    """(browser, context) of a French user's chromium, offline. Without ``route`` the
    browser keeps its HTTP cache, as a user's does: a Playwright route disables it, so that
    every "warm" visit fetched Streamlit's 70-80 lazily loaded scripts from the server again,
    each through the driver (at seed scale, with the route then without it, in two runs:
    the bare page settled in 1.8 then 0.9 s, Carte's map was drawn in 3.1 then 2.5 s).
    ``route``: as before December 2026, requests routed by :func:`_offline_route` (an older
    app that takes Leaflet from a CDN)."""
    browser = p.chromium.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM, args=ARGS + ([] if route else OFFLINE_ARGS))
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
    context.add_init_script(MAP_REPORT_JS)
    if route:
        context.route("**/*", _offline_route)
    return browser, context


def _offline_route(r: object) -> None:
    """Offline browser: the app's own server only; a CDN script folium asks for (an app
    that does not serve them, e.g. ``--app`` of an older version) comes from the fetched
    copy, other CDN scripts and styles are empty, the rest (tiles) is refused."""
    from territoires.app import assets

    url = r.request.url  # type: ignore[attr-defined]
    if url.startswith("http://127.0.0.1"):
        r.continue_()  # type: ignore[attr-defined]
        return
    local = assets.local_file(url)
    if local is not None:
        r.fulfill(path=str(local))  # type: ignore[attr-defined]
    elif url.split("?")[0].endswith((".js", ".css")):
        r.fulfill(status=200, body="", content_type="text/plain")  # type: ignore[attr-defined]
    else:
        r.abort()  # type: ignore[attr-defined]


@contextmanager
def streamlit_server(script: Path, port: int, env: dict[str, str], serve: bool = False,
                     extra: tuple[str, ...] = ()
                     ) -> Iterator[tuple[str, subprocess.Popen, float]]:
    """``streamlit run script`` on 127.0.0.1:port (``serve``: ``territoires serve``, which
    loads the data before it listens; ``extra``: more Streamlit options); yields (base URL,
    process, seconds to healthy)."""
    options = ["--server.headless", "true", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
               *extra]
    command = ([sys.executable, "-m", "territoires.cli", "serve", "--", *options] if serve
               else [sys.executable, "-m", "streamlit", "run", str(script), *options])
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with process(command, {**env, "TERRITOIRES_HOME": str(script.parent)} if serve else env,
                 OUT / f"streamlit-{port}.log", f"{base}/_stcore/health", seconds=900,
                 poll=0.1, cwd=script.parent) as proc:
        yield base, proc, time.perf_counter() - t0


class Visit:
    """One page visit in a new tab: times and websocket traffic."""

    def __init__(self, context: object, url: str, need_map: bool, limit_ms: float = 120_000):
        self.page = context.new_page()  # type: ignore[attr-defined]
        self.frames: list[int] = []
        self.page.on("websocket", self._on_ws)
        self.page.goto(url, wait_until="commit")
        self.settled, self.map, self.footer = self.page.evaluate(
            TIMES_JS, [need_map, limit_ms])

    def _on_ws(self, ws: object) -> None:
        ws.on("framereceived",  # type: ignore[attr-defined]
              lambda payload: self.frames.append(len(payload)))

    def traffic(self, since: int = 0) -> tuple[int, int]:
        """(bytes, largest frame) received since frame number ``since``."""
        part = self.frames[since:]
        return sum(part), max(part, default=0)

    def close(self) -> None:
        self.page.close()


def _median(values: object) -> float | None:
    got = [v for v in values if v is not None]  # type: ignore[attr-defined]
    return statistics.median(got) if got else None


def _ratio(v: float | None, floor: float) -> str:
    return "     —" if v is None else f"{v / floor:6.2f}"


def _fmt_ms(v: float | None) -> str:
    return "   —" if v is None else f"{v:7.0f}"


def _kb(n: float) -> str:
    return f"{n / 1024:8.1f}"


def measure_change(visit: Visit, action: object, legend: str | None,
                   timeout_ms: float = 60_000, prepare: object = None
                   ) -> tuple[float | None, int, int, float | None, float | None]:
    """Run ``prepare`` (untimed: e.g. typing in a list's search box), then ``action`` (the
    gesture that changes the filter: a click, Enter) on the visit's page; (ms from the
    gesture's first input event to the map redrawn, in the page's clock; bytes; largest
    frame; ms from the driver's call to the map redrawn seen by the driver, the figure of
    runs before December 2026; ms the map frame took to swap the layers in, when it says)."""
    page = visit.page
    if prepare is not None:
        prepare(page)  # type: ignore[operator]
    page.evaluate(MARK_OLD_JS)
    page.evaluate(ARM_INPUT_JS)
    start = len(visit.frames)
    t0 = time.perf_counter()
    action(page)  # type: ignore[operator]
    ms: float | None = None
    driver: float | None = None
    try:
        done = page.wait_for_function(f"(legend) => ({REDRAWN_JS})(legend) && "
                                      "performance.now()", arg=legend, timeout=timeout_ms,
                                      polling="raf").json_value()
        driver = (time.perf_counter() - t0) * 1000
        gesture = page.evaluate("() => window.__benchInput")
        ms = done - gesture if gesture is not None else None
    except Exception:  # Playwright's TimeoutError: never redrawn
        pass
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')""",
        timeout=timeout_ms)
    page.wait_for_timeout(300)
    total, largest = visit.traffic(start)
    swap = page.evaluate(SWAP_MS_JS)
    return ms, total, largest, driver, swap


def _measure_radio(page: object) -> None:
    page.get_by_text("Financements (€)", exact=True).first.click()  # type: ignore[attr-defined]


def _type_theme(page: object) -> None:
    box = page.get_by_test_id("stMultiSelect").filter(  # type: ignore[attr-defined]
        has_text="Thèmes").first
    box.click()
    page.keyboard.type("Culture")  # type: ignore[attr-defined]
    page.wait_for_timeout(300)  # type: ignore[attr-defined]


def _press_enter(page: object) -> None:
    page.keyboard.press("Enter")  # type: ignore[attr-defined]


def _theme_filter(page: object) -> None:
    _type_theme(page)
    _press_enter(page)


#: Carte's interactions measured: (name, untimed preparation, gesture, legend text of the
#: map redrawn or None)
INTERACTIONS = (
    ("measure -> Financements", None, _measure_radio, "Financements (€)"),
    # from the gesture that applies the filter (typing in the list is the user's)
    ("theme filter -> Culture", _type_theme, _press_enter, None),
    # the same, the typing included (the figure of earlier runs)
    ("  typing included", None, _theme_filter, None),
)


def ws_first_visits(base: str, n: int, page_name: str = "carte",
                    timeout: float = 300) -> list[float]:
    """``n`` concurrent first visits by websocket clients speaking Streamlit's protocol:
    seconds from connection to the end of the script run, per client."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    url = base.replace("http://", "ws://") + "/_stcore/stream"
    times: list[float] = [float("nan")] * n
    barrier = threading.Barrier(n)

    def client(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        with connect(url, subprotocols=["streamlit"], max_size=None,
                     open_timeout=timeout) as ws:
            msg = BackMsg()
            msg.rerun_script.query_string = ""
            msg.rerun_script.page_name = page_name
            ws.send(msg.SerializeToString())
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                fwd = ForwardMsg()
                fwd.ParseFromString(ws.recv(timeout=timeout))
                if (fwd.WhichOneof("type") == "script_finished"
                        and fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY):
                    times[i] = time.perf_counter() - t0
                    break

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def pages_for(first_id: str) -> list[tuple[str, str, bool]]:
    """(name, URL path, has a map)."""
    return [
        ("accueil", "/", False),
        ("carte", "/carte", True),
        ("catalogue", "/catalogue", False),
        ("fiche", f"/fiche?id={first_id}", True),
        ("comparer", "/comparer?cmp=commune:33063,commune:33119", False),
        ("couverture", "/couverture", True),
        ("exporter", "/exporter", False),
        ("a-propos", "/a-propos", False),
    ]


def bench_scale(label: str, env: dict[str, str], first_id: str, args: argparse.Namespace
                ) -> None:
    """Print every figure of one catalogue scale."""
    from playwright.sync_api import sync_playwright

    bare = OUT / "bare_page.py"
    bare.write_text(BARE_PAGE, encoding="utf-8")
    print(f"\n===== {label} =====", flush=True)
    with (sync_playwright() as p,
          streamlit_server(args.app / "app.py", args.port, env,
                           serve=args.launch == "serve") as (base, proc, healthy),
          streamlit_server(bare, args.port + 1, env, extra=BARE_OPTIONS) as (
              bare_base, bare_proc, _),
          streamlit_server(map_floor_script(args.app), args.port + 3, env,
                           extra=BARE_OPTIONS) as (map_floor_base, _mp, _mh)):
        browser, context = offline_browser(p, args.route)
        rss0 = rss_mb(proc.pid)
        first = Visit(context, base + "/carte", need_map=True)
        print(f"fresh server ({args.launch}): start -> healthy {healthy:.1f} s; first visit "
              "of Carte -> "
              f"settled {(first.settled or float('nan')) / 1000:.1f} s, -> map drawn "
              f"{(first.map or float('nan')) / 1000:.1f} s", flush=True)
        first.close()
        rss1 = rss_mb(proc.pid)

        if args.cold_only:
            rss2 = rss1
            context.close()
            browser.close()
            _concurrent(base, proc, rss0, rss1, rss2, args)
            return
        Visit(context, bare_base + "/", need_map=False).close()  # its cache filled, unmeasured
        floor_runs = []
        for _ in range(args.repeat):
            v = Visit(context, bare_base + "/", need_map=False)
            floor_runs.append((v.settled, *v.traffic(), v.footer))
            v.close()
        floor = _median(r[0] for r in floor_runs) or float("nan")
        floor_footer = _median(r[3] for r in floor_runs) or float("nan")
        print(f"bare page (st.dataframe of the same table): settled {floor:.0f} ms (its "
              f"footer alone: {floor_footer:.0f} ms), "
              f"{_kb(floor_runs[-1][1]).strip()} kB over the websocket, largest frame "
              f"{_kb(floor_runs[-1][2]).strip()} kB; server RSS {rss_mb(bare_proc.pid):.0f} MB")
        Visit(context, map_floor_base + "/", need_map=True).close()  # caches filled
        map_floor_runs = []
        for _ in range(args.repeat):
            v = Visit(context, map_floor_base + "/", need_map=True)
            map_floor_runs.append(v.map)
            v.close()
        map_floor = _median(map_floor_runs) or float("nan")
        print(f"map floor (the Carte's national map alone: a title, the map, the footer): "
              f"map drawn {map_floor:.0f} ms, {map_floor / floor:.2f}x the bare page")

        print(f"\n{'page (warm, median of ' + str(args.repeat) + ')':<28} {'settled':>7} "
              f"{'ratio':>6} {'map':>7} {'ratio':>6} {'ws kB':>8} {'max kB':>8} "
              f"{'footer':>7} {'ratio':>6}   floor (bare page between its visits)"
              f"{'map floor':>10} {'ratio':>6}")
        floors_all: list[float] = []
        for name, path, has_map in pages_for(first_id):
            runs = []
            floors: list[float] = []
            map_floors: list[float | None] = []
            for _ in range(args.repeat):
                v = Visit(context, base + path, need_map=has_map)
                runs.append((v.settled, v.map if has_map else None, *v.traffic(), v.footer))
                v.close()
                # the floor again right after: the ratios are to the bare page of the same
                # minutes (these machines' speed drifts by 20-30 % within a run)
                b = Visit(context, bare_base + "/", need_map=False)
                if b.settled is not None:
                    floors.append(b.settled)
                b.close()
                if has_map:  # and the map's floor
                    m = Visit(context, map_floor_base + "/", need_map=True)
                    map_floors.append(m.map)
                    m.close()
            floor = _median(floors) or floor
            floors_all += floors
            settled = _median(r[0] for r in runs)
            footer = _median(r[4] for r in runs)
            drawn_runs = [r[1] for r in runs if r[1] is not None]
            drawn = statistics.median(drawn_runs) if has_map and drawn_runs else None
            total = statistics.median(r[2] for r in runs)
            largest = max(r[3] for r in runs)
            ratio_map = f"{drawn / floor:6.2f}" if drawn is not None else "     —"
            never = "" if not has_map or len(drawn_runs) == len(runs) else (
                f"  no map in {len(runs) - len(drawn_runs)} of {len(runs)} visits")
            map_floor_here = _median(map_floors)
            versus_map = (f"   {_fmt_ms(map_floor_here)} {_ratio(drawn, map_floor_here)}"
                          if drawn is not None and map_floor_here else "")
            print(f"{name:<28} {_fmt_ms(settled)} {_ratio(settled, floor)} {_fmt_ms(drawn)} "
                  f"{ratio_map} {_kb(total)} {_kb(largest)} {_fmt_ms(footer)} "
                  f"{_ratio(footer, floor_footer)}   {_fmt_ms(floor)}{versus_map}{never}",
                  flush=True)
        print(f"bare page between the visits: median {_fmt_ms(_median(floors_all))} ms, "
              f"from {_fmt_ms(min(floors_all, default=None))} to "
              f"{_fmt_ms(max(floors_all, default=None))} ms")

        print("\nIn the app: from Accueil, a click on the menu's link (its input event) -> "
              "page settled and "
              f"map drawn (median of {args.repeat}; no new document: Streamlit's code is "
              "there already)")
        for name, title, has_map in (("carte", "Carte", True), ("catalogue", "Catalogue", False),
                                     ("couverture", "Couverture", True)):
            runs = []
            for _ in range(args.repeat):
                v = Visit(context, base + "/", need_map=False)
                v.page.evaluate(MARK_OLD_JS)
                v.page.evaluate(ARM_INPUT_JS)
                v.page.get_by_test_id("stSidebar").get_by_role(
                    "link", name=title, exact=True).click()
                t0 = v.page.evaluate("() => window.__benchInput")
                settled, drawn, _ = v.page.evaluate(
                    TIMES_JS, [has_map, 60_000, f"{title} — ", t0])
                runs.append((settled, drawn if has_map else None))
                v.close()
            print(f"  Accueil -> {name:<16} settled {_fmt_ms(_median(r[0] for r in runs))} ms"
                  + (f", map drawn {_fmt_ms(_median(r[1] for r in runs))} ms" if has_map
                     else ""), flush=True)

        print("\nCarte: interaction (from its first input event) -> map redrawn (median of "
              f"{args.repeat}; ws kB and largest frame of the change)")
        for name, prepare, action, legend in INTERACTIONS:
            runs = []
            for _ in range(args.repeat):
                v = Visit(context, base + "/carte", need_map=True)
                runs.append(measure_change(v, action, legend, prepare=prepare))
                v.close()
            print(f"  {name:<26} {_fmt_ms(_median(r[0] for r in runs))} ms "
                  f"{_kb(statistics.median(r[1] for r in runs))} kB, largest "
                  f"{_kb(max(r[2] for r in runs))} kB; from the driver's call "
                  f"{_fmt_ms(_median(r[3] for r in runs))} ms; the frame's layer swap "
                  f"{_fmt_ms(_median(r[4] for r in runs))} ms", flush=True)
        rss2 = rss_mb(proc.pid)
        context.close()
        browser.close()

        _concurrent(base, proc, rss0, rss1, rss2, args)


def compare_scale(label: str, env: dict[str, str], first_id: str, args: argparse.Namespace
                  ) -> None:
    """``--compare DIR``: this app and the one in DIR served side by side, their pages with
    a map visited in turn (A, B, A, B...: the machine's noise falls on both alike)."""
    from playwright.sync_api import sync_playwright

    other = dict(env)
    if (args.compare / "src").is_dir():
        other["PYTHONPATH"] = str(args.compare / "src")
    other["TERRITOIRES_HOME"] = str(args.compare)
    print(f"\n===== {label}: {args.app} (A) against {args.compare} (B) =====", flush=True)
    with (sync_playwright() as p,
          streamlit_server(args.app / "app.py", args.port, env, serve=True) as (a, _, _h),
          streamlit_server(args.compare / "app.py", args.port + 2, other, serve=True) as (
              b, _p, _h2)):
        browser, context = offline_browser(p, args.route)
        print(f"{'page (warm, median of ' + str(args.repeat) + ')':<28} "
              f"{'A settled':>9} {'A map':>7} {'B settled':>9} {'B map':>7} {'map A/B':>7}")
        for name, path, has_map in pages_for(first_id):
            if not has_map:
                continue
            runs: dict[str, list[tuple[float | None, float | None]]] = {a: [], b: []}
            for base in (a, b):  # caches filled, unmeasured
                Visit(context, base + path, need_map=True).close()
            for _ in range(args.repeat):
                for base in (a, b):
                    v = Visit(context, base + path, need_map=True)
                    runs[base].append((v.settled, v.map))
                    v.close()
            sa, ma = (_median(r[i] for r in runs[a]) for i in (0, 1))
            sb, mb = (_median(r[i] for r in runs[b]) for i in (0, 1))
            ratio = f"{ma / mb:7.2f}" if ma and mb else "      —"
            print(f"{name:<28} {_fmt_ms(sa):>9} {_fmt_ms(ma)} {_fmt_ms(sb):>9} "
                  f"{_fmt_ms(mb)} {ratio}", flush=True)
        print(f"\n{'Carte: interaction -> redrawn':<28} {'A':>9} {'B':>9} {'A/B':>7} "
              f"{'A swap':>7} {'B swap':>7}")
        for name, prepare, action, legend in INTERACTIONS[:2]:
            changes: dict[str, list[tuple]] = {a: [], b: []}
            for _ in range(args.repeat):
                for base in (a, b):
                    v = Visit(context, base + "/carte", need_map=True)
                    changes[base].append(measure_change(v, action, legend, prepare=prepare))
                    v.close()
            ca, cb = (_median(r[0] for r in changes[x]) for x in (a, b))
            wa, wb = (_median(r[4] for r in changes[x]) for x in (a, b))
            ratio = f"{ca / cb:7.2f}" if ca and cb else "      —"
            print(f"  {name:<26} {_fmt_ms(ca):>9} {_fmt_ms(cb):>9} {ratio} {_fmt_ms(wa)} "
                  f"{_fmt_ms(wb)}", flush=True)
        context.close()
        browser.close()


def _concurrent(base: str, proc: subprocess.Popen, rss0: float, rss1: float, rss2: float,
                args: argparse.Namespace) -> None:
    """``--clients`` concurrent first visits of Carte, then the server RSS figures (with the
    most seen during the visits, polled every 20 ms)."""
    peak = [0.0]
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_mb(proc.pid))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        times = ws_first_visits(base, args.clients)
    finally:
        done.set()
        poller.join()
    ok = [t for t in times if t == t]
    rss3 = rss_mb(proc.pid)
    med = statistics.median(ok) if ok else float("nan")
    print(f"\n{args.clients} concurrent first visits of Carte (websocket clients): "
          f"{len(ok)}/{len(times)} served, median {med:.2f} s, max "
          f"{max(ok, default=float('nan')):.2f} s")
    print(f"server RSS: at start {rss0:.0f} MB, after the first session {rss1:.0f} MB, "
          f"after the page visits {rss2:.0f} MB, after {args.clients} more sessions "
          f"{rss3:.0f} MB ({(rss3 - rss2) / max(args.clients, 1):.1f} MB per extra "
          f"session), at most {max(peak[0], rss3):.0f} MB during those sessions", flush=True)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="seed", help="seed, 50k or both: seed,50k")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--port", type=int, default=8640)
    parser.add_argument("--initiatives", type=int, default=50_000)
    parser.add_argument("--funding", type=int, default=200_000)
    parser.add_argument("--geo", default=None)
    parser.add_argument("--cold-only", action="store_true",
                        help="only the fresh server figures: first map, concurrent first "
                             "visits, RSS (no warm page table, no interactions)")
    parser.add_argument("--launch", choices=("serve", "streamlit-run"), default="serve",
                        help="how the app's server starts: territoires serve (caches "
                             "filled before it listens) or plain streamlit run app.py")
    parser.add_argument("--compare", type=Path, default=None,
                        help="folder of another copy of the app: only the pages with a map "
                             "and Carte's interactions, visited in turn on both (before/after "
                             "in one run)")
    parser.add_argument("--route", action="store_true",
                        help="route the browser's requests (an app taking Leaflet from a CDN; "
                             "the HTTP cache is then off, as in runs before December 2026)")
    parser.add_argument("--app", type=Path, default=REPO,
                        help="folder of the app.py to measure (e.g. an older version "
                             "unpacked with git archive; its src/ goes first on PYTHONPATH)")
    args = parser.parse_args()
    args.app = args.app.resolve()
    run = bench_scale
    if args.compare is not None:
        args.compare = args.compare.resolve()
        run = compare_scale

    OUT.mkdir(parents=True, exist_ok=True)
    geo = Path(args.geo) if args.geo else built_geo_dir()
    from territoires.app import assets

    assets.fetch()
    common_env = {"TERRITOIRES_GEO_DIR": str(geo), "TERRITOIRES_HOME": str(args.app)}
    if (args.app / "src").is_dir() and args.app != REPO:
        common_env["PYTHONPATH"] = str(args.app / "src")
    for scale in args.scales.split(","):
        if scale == "seed":
            url = seed_db(Path(tempfile.mkdtemp(prefix="territoires-bb-")) / "seed.sqlite")
            run("seed catalogue (12 fiches)",
                        {**common_env, "TERRITOIRES_DATABASE_URL": url},
                        SEED_FIRST_ID, args)
        elif scale == "50k":
            path = OUT / f"synthetic-{args.initiatives}-{args.funding}.sqlite"
            url, first_id = synthetic_db(path, geo, args.initiatives, args.funding)
            run(f"{args.initiatives} synthetic initiatives",
                        {**common_env, "TERRITOIRES_DATABASE_URL": url}, first_id, args)
        else:
            parser.error(f"unknown scale {scale!r}")


if __name__ == "__main__":
    main()

"""What the parts of the Carte page around its map cost the map's first view in the browser.

Usage: ``.venv/bin/python bench/bench_map_parts.py [--repeat 7] [--port 8680]``

``bench_browser`` reads each page with a map against the map floor (the Carte's national
map alone: a title, the map, the footer). This script splits the gap between the floor and
the Carte page: it serves, side by side, at seed scale,

- ``bare``: ``bench_browser``'s bare page (the catalogue table; the issue's reference);
- ``floor``: ``bench_browser``'s map floor;
- ``floor + choices``: the floor with the Carte's three choices above the map (level,
  measure and colour: ``ui.carte_choices``, three ``st.radio``);
- ``floor + filters``: the floor with the shared filters in the sidebar
  (``ui.render_filters_sidebar``: two text inputs, two multiselects, a button);
- ``floor + both``;
- ``both, map first``: ``floor + both`` with its choices and filters sent after the map
  (the choices in a container that holds their place above it): on a session's first run
  the script waits :data:`MAP_FIRST_DELAY` s after the map before it draws them, so that
  the browser creates the map's frame before it loads and draws the widgets (a model of
  what the app does by default, where the map's frame triggers it);
- ``carte, one run``: the app's Carte page with ``TERRITOIRES_MAP_FIRST=0``
  (``territoires serve``: the menu, the account block, the filters, the choices, the
  captions and the table's expander around the same map, all in the first run);
- ``carte``: the same as it is served by default, the menu, filters and choices sent once
  the map's frame exists (``ui.first_view_step``).

Each part is drawn by the app's own functions, not a copy of them. The pages are visited in
turn (bare, floor, …, carte, bare, …: the machine's noise falls on all alike) in new tabs of
one offline chromium that keeps its HTTP cache, and the script prints each page's median
time from navigation to the map drawn (``bench_browser.TIMES_JS``; the bare page: to its
content settled), its ratio to the bare page and to the floor, its median time to the
page settled and that time's ratio to the bare page, and the websocket messages it
received. What the differences measure is the browser's work for the part added, on the
page's main thread: Streamlit's frontend loads the code of most elements (every widget, the
map's component) when it first draws one, shows a skeleton meanwhile, and React reveals the
elements that waited for their code together, in one more render split into 5 ms slices
between the browser's frames; the map's frame is created then, with the widgets drawn in
the same first view (``bench_first_view.py`` prints a visit's commits one by one).

What it showed (December 2026, seed, medians of 5, bare page 857 ms; map drawn, then page
settled, as ratios to the bare page): floor 1.13 / 0.90, + choices 1.16 / 1.00, + filters
1.24 / 1.07, + both 1.34 / 1.16, both, map first 1.02 / 1.43; carte in one run 1.57 / 1.37,
carte with its map first 1.19 / 1.61 (then ``TERRITOIRES_MAP_FIRST=1``; the default since).
Sending the widgets after the map's frame brings the map close to the floor; the widgets
then come about as much later, about when the map came before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import bench_browser as bb
from common import built_geo_dir, seed_db

#: The floor's lines that the variants change
LEVEL_LINE = "level = ui.carte_default_level(filters, area)\n"
FILTERS_LINE = "filters = ui.current_filters()\n"

#: The Carte page's three choices, drawn by the page's own function
CHOICES = "level = ui.carte_choices(filters, area)[0]\n"

VARIANTS = ("floor", "floor + choices", "floor + filters", "floor + both",
            "both, map first")

#: Seconds ``both, map first`` waits, on a session's first run, between the map and the
#: widgets
MAP_FIRST_DELAY = 0.3

#: The floor's last line: ``both, map first`` draws its widgets before it
FOOTER_LINE = 'st.caption("Sources : ANCT (map floor)")\n'

#: ``both, map first``: the widgets after the map (the choices in their place above it)
MAP_FIRST = f"""if not st.session_state.get("_map_first"):
    st.session_state["_map_first"] = True
    import time
    time.sleep({MAP_FIRST_DELAY})
with box:
    ui.carte_choices(filters, area)
ui.render_filters_sidebar()
"""


def variant_source(variant: str) -> str:
    """The map floor's script with the parts ``variant`` names."""
    source = bb.MAP_FLOOR_PAGE
    for line in (LEVEL_LINE, FILTERS_LINE, FOOTER_LINE):
        if source.count(line) != 1:
            raise RuntimeError(f"map floor page changed: {line.strip()!r} not found once")
    if variant == "both, map first":
        return (source.replace(LEVEL_LINE, LEVEL_LINE + "box = st.container()\n")
                .replace(FOOTER_LINE, MAP_FIRST + FOOTER_LINE))
    if variant in ("floor + choices", "floor + both"):
        source = source.replace(LEVEL_LINE, LEVEL_LINE + CHOICES)
    if variant in ("floor + filters", "floor + both"):
        source = source.replace(FILTERS_LINE, "filters = ui.render_filters_sidebar()\n")
    return source


def seed_env(prefix: str) -> dict[str, str]:
    """The environment of servers of the app or of its floor pages on a new SQLite
    catalogue of the seed fiches (in a temporary folder named ``prefix``...)."""
    url = seed_db(Path(tempfile.mkdtemp(prefix=prefix)) / "seed.sqlite")
    return {**os.environ, "TERRITOIRES_DATABASE_URL": url,
            "TERRITOIRES_GEO_DIR": str(built_geo_dir()), "TERRITOIRES_HOME": str(bb.REPO)}


def serve_variant(stack: ExitStack, variant: str, script: Path, port: int,
                  env: dict[str, str]) -> str:
    """Serve the map floor's ``variant`` from ``script`` (beside the floor's script, see
    ``bench_browser.map_floor_script``) on ``port`` until ``stack`` closes; its base URL."""
    script.write_text(variant_source(variant), encoding="utf-8")
    return stack.enter_context(bb.streamlit_server(script, port, env,
                                                   extra=bb.BARE_OPTIONS))[0]


def main() -> None:
    """Serve the pages, visit them in turn, print the medians."""
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--port", type=int, default=8680)
    args = parser.parse_args()
    env = seed_env("territoires-bm-")
    bb.OUT.mkdir(exist_ok=True)
    folder = bb.map_floor_script(bb.REPO).parent  # the app's static files and settings
    bare = bb.OUT / "bare_page.py"
    bare.write_text(bb.BARE_PAGE, encoding="utf-8")
    with ExitStack() as stack:
        bases = {"bare": stack.enter_context(bb.streamlit_server(
            bare, args.port, env, extra=bb.BARE_OPTIONS))[0]}
        for i, variant in enumerate(VARIANTS):
            bases[variant] = serve_variant(stack, variant, folder / f"map_parts_{i}.py",
                                           args.port + 1 + i, env)
        bases["carte, one run"] = stack.enter_context(bb.streamlit_server(
            bb.REPO / "app.py", args.port + 1 + len(VARIANTS),
            {**env, "TERRITOIRES_MAP_FIRST": "0"}, serve=True))[0] + "/carte"
        bases["carte"] = stack.enter_context(bb.streamlit_server(
            bb.REPO / "app.py", args.port + 2 + len(VARIANTS), env, serve=True))[0] + "/carte"
        p = stack.enter_context(sync_playwright())
        browser, context = bb.offline_browser(p)
        for name, base in bases.items():  # caches filled, unmeasured
            bb.Visit(context, base, need_map=name != "bare").close()
        times: dict[str, list[float]] = {name: [] for name in bases}
        settled: dict[str, list[float]] = {name: [] for name in bases}
        messages: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, base in bases.items():
                visit = bb.Visit(context, base, need_map=name != "bare")
                value = visit.settled if name == "bare" else visit.map
                if value is not None:
                    times[name].append(value)
                if visit.settled is not None:
                    settled[name].append(visit.settled)
                messages[name] = len(visit.frames)
                visit.close()
        context.close()
        browser.close()
    medians = {name: statistics.median(values) for name, values in times.items() if values}
    calm = {name: statistics.median(values) for name, values in settled.items() if values}
    print(f"{'page (median of ' + str(args.repeat) + ')':<24} {'map drawn':>9} "
          f"{'/ bare':>7} {'/ floor':>8} {'settled':>8} {'/ bare':>7} {'messages':>9}")
    for name in bases:
        if name not in medians:
            print(f"{name:<24} {'—':>9}")
            continue
        value = medians[name]
        label = "bare (settled)" if name == "bare" else name
        ratios = " ".join(f"{value / medians[base]:7.2f}" if base in medians else "      —"
                          for base in ("bare", "floor"))
        page = (f"{calm[name]:8.0f} {calm[name] / medians['bare']:7.2f}"
                if name in calm and "bare" in medians else f"{'—':>8} {'—':>7}")
        print(f"{label:<24} {value:9.0f} {ratios} {page} {messages[name]:9d}")


if __name__ == "__main__":
    main()

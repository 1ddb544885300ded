"""What a page's first view is made of in the browser, commit by commit.

Usage: ``.venv/bin/python bench/bench_first_view.py [--pages carte,floor] [--repeat 3]
[--port 8690]``

``bench_browser`` times a first view as a whole (navigation -> map drawn) and
``bench_map_parts`` what each part of the Carte page adds to it. This script says where the
time goes inside one visit: for each page (``carte``, ``couverture``, ``fiche``: the app
served by ``territoires serve`` at seed scale; ``floor`` and ``floor + filters``, ``floor +
choices``, ``floor + both``: ``bench_map_parts``' pages), after an unmeasured visit that
fills chromium's HTTP cache, it prints the timeline of ``--repeat`` visits in new tabs
(ms since navigation start):

- the websocket: opened, first and last message of the script's run (count, bytes);
- each commit of Streamlit's frontend that changes what the page shows (seen by a
  ``MutationObserver`` after React wrote the DOM): the elements drawn and how many of them
  are still skeletons (an element whose code Streamlit's frontend loads when it first
  draws one: every widget, the map's component), the map's frame when it appears;
- the map drawn (``bench_browser.MAP_REPORT_JS``);
- the main thread's long tasks (over 50 ms: what the page's scripts and React's renders
  cost in one piece);

then, for each page, the medians of the times after the websocket opened of its last
message, of the first commit of the script's elements, of the map's frame created and of
the map drawn, and of the skeleton wait: from the first commit with skeletons to the
commit that creates the map's frame (for a component's frame: the elements that waited for
their code are shown with it).

What it showed (December 2026, Streamlit 1.67, React 18.3, seed, these 2-core machines; medians
of 3): on Carte the script's 42 messages are in 0.2 s after the websocket opens, and the
first commit of its elements ends one long task of 250-350 ms; it draws 18 skeletons (9 menu
links, 2 text inputs, 2 lists, a button, 3 radios and the map's component). Their code is
fetched during that render, from the HTTP cache, and is there when it ends; React then
draws the 18 elements again in one render that it splits into 5 ms slices between the
browser's frames, and commits them together: the map's frame is created 655 ms after the
first commit (Couverture: 511 ms), against 115 ms on the map floor, where the map's
component is the only element waiting, and 432 ms on the floor with the sidebar's filters.
React's throttle of such reveals (500 ms) is not the cause: with it taken out of React's
bundle the waits were the same; nor is the skeletons' animation (a style stopping it: map
drawn 1.40x against 1.39x the bare page, medians of 7).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import bench_browser as bb
import bench_map_parts as bm
from common import SEED_FIRST_ID

#: JS run before the page's scripts (top document only): records, in
#: ``window.__firstView``, [ms since navigation start, kind, detail] of the websocket's
#: opening and messages, of each DOM change that changes the counts of elements, skeletons
#: and frames, and of the long tasks.
TIMELINE_JS = """(() => {
  if (window !== window.top) return;
  const log = window.__firstView = [];
  const at = (kind, detail) => log.push([performance.now(), kind, detail]);
  const Native = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener('open', () => at('open', null));
    ws.addEventListener('message', e => at('message',
        e.data.size ?? e.data.byteLength ?? e.data.length ?? 0));
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, Native);
  let last = '';
  const commit = () => {
    const n = sel => document.querySelectorAll(sel).length;
    const counts = [n('[data-testid="stElementContainer"]'), n('[data-testid="stSkeleton"]'),
                    n('iframe')];
    if (counts.join() !== last) { last = counts.join(); at('commit', counts); }
  };
  document.addEventListener('DOMContentLoaded', () => {
    at('parsed', null);
    new MutationObserver(commit).observe(document.body, {subtree: true, childList: true});
  });
  new PerformanceObserver(list => list.getEntries().forEach(
      e => log.push([e.startTime, 'long', e.duration]))).observe({type: 'longtask',
                                                                   buffered: true});
})()"""


def app_pages(first_id: str) -> dict[str, str]:
    """The app's pages with a map: name -> URL path."""
    return {name: path for name, path, has_map in bb.pages_for(first_id) if has_map}


def timeline(events: list[list], map_ms: float | None) -> tuple[list[str], dict[str, float]]:
    """The printed lines of one visit (in time order) and its intervals (ms) by name:
    :data:`SPANS` after the websocket opened, and the skeleton wait."""
    events = sorted(events, key=lambda e: e[0])
    messages = [e for e in events if e[1] == "message"]
    opened = next((t for t, kind, _d in events if kind == "open"), None)
    lines: list[tuple[float, str]] = []
    marks: dict[str, float] = {}
    busy = 0.0
    for t, kind, detail in events:
        if kind == "parsed":
            lines.append((t, "document parsed"))
        elif kind == "open":
            lines.append((t, "websocket opened"))
        elif kind == "long":
            busy += detail
        elif kind == "commit" and detail[0]:
            elements, skeletons, frames = detail
            note = ""
            if frames and "frame" not in marks:
                marks["frame"] = t
                note = "; the map's frame created"
            if opened is not None and t >= opened:
                marks.setdefault("first commit", t)
                if skeletons:
                    marks.setdefault("skeletons", t)
            lines.append((t, f"commit: {elements} elements, {skeletons} skeletons, "
                             f"{frames} frames{note}"))
    if messages:
        marks["last message"] = messages[-1][0]
        lines.append((messages[0][0], f"first message; the last at {messages[-1][0]:.0f} "
                      f"({len(messages)} messages, "
                      f"{sum(m[2] for m in messages) / 1024:.1f} kB)"))
    if map_ms is not None:
        marks["map"] = map_ms
        lines.append((map_ms, "map drawn"))
    longs = ", ".join(f"{t:.0f}+{d:.0f}" for t, kind, d in events if kind == "long")
    out = [f"{t:7.0f}  {text}" for t, text in sorted(lines, key=lambda x: x[0])]
    out.append(f"         long tasks (start+ms): {longs}; {busy:.0f} ms in all")
    intervals = {name: marks[name] - opened for name in SPANS
                 if opened is not None and name in marks}
    if "skeletons" in marks and "frame" in marks:
        intervals["skeleton wait"] = marks["frame"] - marks["skeletons"]
    return out, intervals


#: The marks of a visit printed as intervals after the websocket opened
SPANS = ("last message", "first commit", "frame", "map")


def main() -> None:
    """Serve the pages, visit each ``--repeat`` times, print timelines and medians."""
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", default="carte,floor",
                        help="among carte, couverture, fiche, " + ", ".join(bm.VARIANTS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--port", type=int, default=8690)
    args = parser.parse_args()
    names = [n.strip() for n in args.pages.split(",") if n.strip()]
    in_app = app_pages(SEED_FIRST_ID)
    unknown = [n for n in names if n not in in_app and n not in bm.VARIANTS]
    if unknown:
        parser.error(f"unknown page(s): {', '.join(unknown)}")
    env = bm.seed_env("territoires-fv-")
    bb.OUT.mkdir(exist_ok=True)
    folder = bb.map_floor_script(bb.REPO).parent
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        app_base = None
        for i, name in enumerate(names):
            if name in in_app:
                if app_base is None:
                    app_base = stack.enter_context(bb.streamlit_server(
                        bb.REPO / "app.py", args.port, env, serve=True))[0]
                urls[name] = app_base + in_app[name]
                continue
            urls[name] = bm.serve_variant(stack, name, folder / f"first_view_{i}.py",
                                          args.port + 1 + i, env)
        p = stack.enter_context(sync_playwright())
        browser, context = bb.offline_browser(p)
        context.add_init_script(TIMELINE_JS)
        for u in urls.values():  # caches filled, unmeasured
            bb.Visit(context, u, need_map=True).close()
        medians: dict[str, dict[str, list[float]]] = {}
        for name, u in urls.items():
            for n in range(args.repeat):
                visit = bb.Visit(context, u, need_map=True)
                events = visit.page.evaluate("window.__firstView")
                visit.close()
                lines, intervals = timeline(events, visit.map)
                print(f"\n== {name}, visit {n + 1}: map drawn {bb._fmt_ms(visit.map).strip()} "
                      f"ms, settled {bb._fmt_ms(visit.settled).strip()} ms", flush=True)
                print("\n".join(lines))
                for key, value in intervals.items():
                    medians.setdefault(name, {}).setdefault(key, []).append(value)
        context.close()
        browser.close()
    spans = (*SPANS, "skeleton wait")
    print(f"\n{'medians (ms after the websocket opened)':<40}")
    print(f"{'page':<20}" + "".join(f"{s:>15}" for s in spans))
    for name, values in medians.items():
        print(f"{name:<20}" + "".join(
            f"{statistics.median(values[s]):15.0f}" if values.get(s) else f"{'—':>15}"
            for s in spans))


if __name__ == "__main__":
    main()

"""What one more Streamlit element costs a page's first view in the browser.

Usage: ``.venv/bin/python bench/bench_elements.py [--repeat 7] [--count 80] [--port 8660]``

Three pages are served side by side by plain ``streamlit run`` (the options of
``bench_browser``'s bare page), each the bare page of ``bench_browser`` (the catalogue table
with ``st.dataframe``, at seed scale) with, above its footer:

- ``bare``: nothing more;
- ``elements``: ``--count`` short paragraphs, one ``st.markdown`` each;
- ``merged``: the same paragraphs in one ``st.markdown``.

They are visited in turn (bare, elements, merged, bare, …: the machine's noise falls on all
alike) in new tabs of one offline chromium that keeps its HTTP cache, and the script prints
each page's median time from navigation to settled (``bench_browser.TIMES_JS``) and the
websocket messages it received. The server sends them all within a few milliseconds: what
the difference measures is the browser's work per element (each websocket message is
decoded and rendered by React on its own, on the page's main thread). It is the reason why
the app's pages put static text that belongs together into one element.
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

from bench_browser import (
    BARE_OPTIONS,
    BARE_PAGE,
    OUT,
    Visit,
    offline_browser,
    streamlit_server,
)
from common import seed_db

FOOTER = 'st.caption("Sources'


def page_source(variant: str, count: int) -> str:
    """The bare page with what ``variant`` adds above its footer."""
    extra = {
        "bare": "",
        "elements": f"for i in range({count}):\n    st.markdown(f'Paragraphe {{i}}')\n",
        "merged": (f"st.markdown('\\n\\n'.join(f'Paragraphe {{i}}' "
                   f"for i in range({count})))\n"),
    }[variant]
    return BARE_PAGE.replace(FOOTER, extra + FOOTER)


def main() -> None:
    """Serve the three pages, visit them in turn, print the medians."""
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--count", type=int, default=80)
    parser.add_argument("--port", type=int, default=8660)
    args = parser.parse_args()
    variants = ("bare", "elements", "merged")
    url = seed_db(Path(tempfile.mkdtemp(prefix="territoires-be-")) / "seed.sqlite")
    env = {**os.environ, "TERRITOIRES_DATABASE_URL": url}
    OUT.mkdir(exist_ok=True)
    with ExitStack() as stack:
        bases = {}
        for i, variant in enumerate(variants):
            script = OUT / f"elements_{variant}.py"
            script.write_text(page_source(variant, args.count), encoding="utf-8")
            bases[variant] = stack.enter_context(streamlit_server(
                script, args.port + i, env, extra=BARE_OPTIONS))[0]
        p = stack.enter_context(sync_playwright())
        browser, context = offline_browser(p)
        for variant in variants:  # caches filled, unmeasured
            Visit(context, bases[variant] + "/", need_map=False).close()
        settled: dict[str, list[float]] = {v: [] for v in variants}
        messages: dict[str, int] = {}
        for _ in range(args.repeat):
            for variant in variants:
                visit = Visit(context, bases[variant] + "/", need_map=False)
                if visit.settled is not None:
                    settled[variant].append(visit.settled)
                messages[variant] = len(visit.frames)
                visit.close()
        base = statistics.median(settled["bare"])
        print(f"{'page (median of ' + str(args.repeat) + ')':<24} {'settled':>8} "
              f"{'vs bare':>8} {'messages':>9}")
        for variant in variants:
            med = statistics.median(settled[variant])
            print(f"{variant:<24} {med:8.0f} {med - base:+8.0f} {messages[variant]:9d}")
        extra = statistics.median(settled["elements"]) - statistics.median(settled["merged"])
        print(f"per element (elements - merged) / {args.count - 1}: "
              f"{extra / (args.count - 1):.1f} ms")
        context.close()
        browser.close()


if __name__ == "__main__":
    main()

"""Server time of the Catalogue, Fiche, Comparer, Couverture and Exporter pages, and export
sizes/times.

Usage: ``.venv/bin/python bench/bench_pages.py [--initiatives N] [--funding N] [--repeat R]
[--export-rows N] [--geo DIR] [--scales seed,national]``

Pages are rendered with Streamlit's AppTest; the figure is the server time of the script
run (router + page, timed around Streamlit's script runner, in its own thread as on a real
server), without AppTest's own overhead. Each case opens one session on a shared link ("1st
visit"; the very first case also fills the process caches), then reruns it ``--repeat``
times: the median rerun is the figure to compare with the goals (<= 300 ms at seed scale,
<= 1 s at national synthetic scale); the AppTest wall time of a rerun is printed beside it.
Seed scale = the fiches of ``data/initiatives`` in a temporary SQLite database; national
scale = :func:`synthetic.make_synthetic` in a SQLite database (:func:`common.synthetic_db`,
written once to ``bench/out/``, as for bench_browser). A case whose page shows an error is
printed with it, and the script then exits with an error. Layers: ``--geo``, else ``geo/``
if built, else built from the mirror (``TERRITOIRES_MIRROR``, default /work/shared/data)
into a temporary folder. Then the export of ``--export-rows`` synthetic initiatives in every
format: time and size.
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

from common import SEED_FIRST_ID, built_geo_dir, seed_db, synthetic_db  # noqa: E402
from synthetic import make_synthetic  # noqa: E402
from territoires.analysis import queries, views  # noqa: E402
from territoires.pipeline import layers as layers_mod  # noqa: E402
from territoires.pipeline.territories import TerritoryIndex  # noqa: E402

APP = str(REPO / "app.py")
OUT = REPO / "bench" / "out"


def geo_dir(arg: str | None) -> Path:
    """A built geo/ folder (see module docstring)."""
    return Path(arg) if arg else built_geo_dir()


class ScriptTimer:
    """Times every script run on the server side: the Streamlit script runner's
    ``_run_script`` (the whole app script, router and page, in its own thread, as on a real
    server), without AppTest's own per-instance work (its component scan alone takes about
    0.2 s) or its polling."""

    def __init__(self) -> None:
        from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

        self.times: list[float] = []
        original = ScriptRunner._run_script
        timer = self

        def timed(runner: object, rerun_data: object) -> None:
            t0 = time.perf_counter()
            try:
                original(runner, rerun_data)
            finally:
                timer.times.append((time.perf_counter() - t0) * 1000)

        ScriptRunner._run_script = timed  # type: ignore[method-assign]


def render_ms(timer: ScriptTimer, page: str, params: dict[str, str],
              repeat: int) -> tuple[float, float, float, str]:
    """One AppTest session opened on ``page`` with ``params`` (a shared link), then
    ``repeat`` reruns (what every interaction costs): (first visit server ms, median rerun
    server ms, median rerun AppTest wall ms, problem or "")."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=600)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page)
    start = len(timer.times)
    at.run()
    first = sum(timer.times[start:])  # a deep link may run the router, then the page
    problem = ""
    server, wall = [], []
    for _ in range(repeat):
        start = len(timer.times)
        t0 = time.perf_counter()
        at.run()
        wall.append((time.perf_counter() - t0) * 1000)
        server.append(sum(timer.times[start:]))
    if at.exception or at.error:
        problem = "; ".join(str(e.value)[:120] for e in [*at.exception, *at.error])
    return first, statistics.median(server), statistics.median(wall), problem


def page_cases(first_id: str, dep: str) -> list[tuple[str, str, dict[str, str]]]:
    """(name, page, query parameters) of the measured renders."""
    return [
        ("accueil, no filter", "pages/accueil.py", {}),
        ("carte, no filter (national view)", "pages/carte.py", {}),
        (f"carte, département {dep}", "pages/carte.py", {"t": f"departement:{dep}"}),
        ("catalogue, no filter", "pages/catalogue.py", {}),
        (f"catalogue, département {dep}", "pages/catalogue.py", {"t": f"departement:{dep}"}),
        ("fiche", "pages/fiche.py", {"id": first_id}),
        ("fiche, no id (choice)", "pages/fiche.py", {"t": f"departement:{dep}"}),
        ("comparer 4 communes + 2 initiatives", "pages/comparer.py",
         {"cmp": "commune:33063,commune:33119,commune:33249,commune:64445",
          "ini": first_id}),
        ("couverture QPV, no filter", "pages/couverture.py", {}),
        ("couverture QPV, parentalité + collège", "pages/couverture.py",
         {"themes": "parentalite", "publics": "college"}),
        ("couverture communes, département", "pages/couverture.py",
         {"t": f"departement:{dep}", "unite": "commune"}),
        (f"exporter xlsx, département {dep}", "pages/exporter.py",
         {"t": f"departement:{dep}", "format": "xlsx"}),
        ("exporter csv, no filter", "pages/exporter.py", {"format": "csv"}),
    ]


def bench_pages(timer: ScriptTimer, label: str, first_id: str, repeat: int) -> int:
    """Print the render times of every case; returns how many cases showed an error (their
    times measure an error page, not the page)."""
    print(f"\n== pages at {label} (server time of the script run, ms) ==")
    print(f"{'page':<45} {'1st visit':>9} {'rerun':>7} {'AppTest':>8}")
    problems = 0
    for name, page, params in page_cases(first_id, "33"):
        first, server, wall, problem = render_ms(timer, page, params, repeat)
        print(f"{name:<45} {first:9.0f} {server:7.0f} {wall:8.0f}  {problem}", flush=True)
        problems += bool(problem)
    return problems


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--initiatives", type=int, default=50_000)
    parser.add_argument("--funding", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--export-rows", type=int, default=50_000)
    parser.add_argument("--geo", default=None)
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--scales", default="seed,national",
                        help="page scales to measure: seed, national or both")
    parser.add_argument("--formats", default="csv,xlsx,geojson,gpkg")
    args = parser.parse_args()

    geo = geo_dir(args.geo)
    os.environ["TERRITOIRES_GEO_DIR"] = str(geo)
    layers = layers_mod.load_layers(geo)
    index = TerritoryIndex.from_layers(layers)
    tmp = Path(tempfile.mkdtemp(prefix="territoires-bench-db-"))

    timer = ScriptTimer()
    problems = 0
    scales = set(args.scales.split(","))
    if not args.skip_pages and "seed" in scales:
        os.environ["TERRITOIRES_DATABASE_URL"] = seed_db(tmp / "seeds.sqlite")
        problems += bench_pages(timer, "seed scale (12 fiches)", SEED_FIRST_ID,
                                args.repeat)

    if not args.skip_pages and "national" in scales:
        OUT.mkdir(parents=True, exist_ok=True)
        url, first_id = synthetic_db(OUT / f"synthetic-{args.initiatives}-{args.funding}.sqlite",
                                     geo, args.initiatives, args.funding)
        os.environ["TERRITOIRES_DATABASE_URL"] = url
        problems += bench_pages(timer, f"national synthetic scale ({args.initiatives} "
                                f"initiatives, {args.funding} lines)", first_id, args.repeat)

    if problems:
        sys.exit(f"{problems} page(s) showed an error: their times measure nothing")
    if args.export_rows <= 0:
        return
    t0 = time.perf_counter()
    synthetic = make_synthetic(index, args.initiatives, args.funding, seed=0)
    print(f"\nsynthetic catalogue: {len(synthetic.initiatives)} initiatives, "
          f"{len(synthetic.funding)} funding lines ({time.perf_counter() - t0:.1f} s)")
    print(f"\n== export of {args.export_rows} initiatives (with their tables) ==")
    ids = synthetic.initiatives["id"].iloc[: args.export_rows]
    sub = synthetic.subset(set(ids))
    sel = queries.select(sub, index, queries.Filters())
    print(f"rows: {len(sub.initiatives)} initiatives, {len(sub.organisations)} structures, "
          f"{len(sub.territories)} territories, {len(sub.funding)} funding lines")
    print(f"{'format':<8} {'seconds':>8} {'size':>12}")
    for fmt in args.formats.split(","):
        t0 = time.perf_counter()
        data = views.export_file(sel, fmt, layers=layers, index=index)
        print(f"{fmt:<8} {time.perf_counter() - t0:8.1f} {views.fmt_size(len(data)):>12}",
              flush=True)


if __name__ == "__main__":
    main()

"""Benchmark of the queries on a synthetic catalogue over the real territories.

Usage: ``.venv/bin/python bench/bench_queries.py [--initiatives N] [--funding N] [--repeat R]``

Layers: read from ``geo/`` (:func:`territoires.pipeline.layers.load_layers`); when they are not
built,
they are fetched from the mirror (``TERRITOIRES_MIRROR``, default /work/shared/data) and built
into a temporary folder. Prints median and p95 (ms) per operation; the target is filter +
aggregate <= 200 ms for 50,000 initiatives and 200,000 funding lines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import built_geo_dir
from synthetic import make_synthetic
from territoires.analysis.queries import (
    Filters,
    aggregate,
    coverage,
    coverage_summary,
    key_figures,
    prepare,
    select,
    theme_coverage,
)
from territoires.pipeline import layers as layers_mod
from territoires.pipeline.territories import TerritoryIndex


def load_or_build() -> layers_mod.Layers:
    """Built layers, or layers built from the mirror into a temporary folder."""
    return layers_mod.load_layers(built_geo_dir())


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, p95) in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--initiatives", type=int, default=50_000)
    parser.add_argument("--funding", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    t0 = time.perf_counter()
    layers = load_or_build()
    t1 = time.perf_counter()
    index = TerritoryIndex.from_layers(layers)
    t2 = time.perf_counter()
    for level in ("region", "departement", "epci", "commune", "qpv"):
        index.incidence(level)
    t3 = time.perf_counter()
    print(f"layers: {len(layers.communes)} communes, {len(layers.qpv)} QPV, "
          f"{len(layers.contrats_ville)} contrats, {len(layers.cites_educatives)} cités; "
          f"{len(index.table)} territories")
    print(f"load layers {1000 * (t1 - t0):.0f} ms, index {1000 * (t2 - t1):.0f} ms, "
          f"incidences {1000 * (t3 - t2):.0f} ms")
    catalogue = make_synthetic(index, args.initiatives, args.funding, seed=0)
    t4 = time.perf_counter()
    print(f"synthetic: {len(catalogue.initiatives)} initiatives, "
          f"{len(catalogue.territories)} territory rows, {len(catalogue.funding)} funding lines "
          f"({1000 * (t4 - t3):.0f} ms)")
    prepare(catalogue, index)
    print(f"prepare (one-off): {1000 * (time.perf_counter() - t4):.0f} ms")

    dep = index.table.loc[index.table["level"] == "departement", "code"]
    dep_code = "33" if (dep == "33").any() else str(dep.iloc[0])
    cases = {
        "(a) no filter": Filters(),
        f"(b) département {dep_code}": Filters(territories=(("departement", dep_code),)),
        "(c) theme + public": Filters(themes=("culture",), publics=("college",)),
        "(d) text search": Filters(text="théâtre collège"),
    }
    rows: list[tuple[str, float, float]] = []
    for name, filters in cases.items():
        sel = select(catalogue, index, filters)
        rows.append((f"select {name} [{len(sel.catalogue)} init., {len(sel.funding)} lines]",
                     *timed(lambda f=filters: select(catalogue, index, f), args.repeat)))
    for name, filters in list(cases.items())[:2]:
        sel = select(catalogue, index, filters)
        for level in ("departement", "commune", "qpv"):
            rows.append((f"aggregate {level} {name}",
                         *timed(lambda s=sel, lv=level: aggregate(s, index, lv), args.repeat)))
            rows.append((f"select + aggregate {level} {name}", *timed(
                lambda f=filters, lv=level: aggregate(select(catalogue, index, f), index, lv),
                args.repeat)))
        rows.append((f"coverage qpv {name}",
                     *timed(lambda s=sel: coverage(s, index), args.repeat)))
        rows.append((f"coverage commune {name}",
                     *timed(lambda s=sel: coverage(s, index, "commune"), args.repeat)))
        rows.append((f"key_figures {name}",
                     *timed(lambda s=sel: key_figures(s, index), args.repeat)))
        rows.append((f"coverage_summary qpv {name}",
                     *timed(lambda s=sel: coverage_summary(s, index), args.repeat)))
        for by in ("themes", "publics"):
            rows.append((f"theme_coverage {by} {name}",
                         *timed(lambda s=sel, b=by: theme_coverage(s, index, b), args.repeat)))
    width = max(len(r[0]) for r in rows)
    print(f"{'operation':<{width}}  median ms   p95 ms")
    for name, med, p95 in rows:
        print(f"{name:<{width}}  {med:9.1f}  {p95:7.1f}")


if __name__ == "__main__":
    main()

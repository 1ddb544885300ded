"""Time and size of :func:`territoires.catalogue.export.export_bytes` in every format.

Usage: ``.venv/bin/python bench/bench_export.py [--geo DIR] [--sizes 5000,50000]
[--formats csv,xlsx,geojson,gpkg]``

Builds the territory index from the built layers (``geo/`` by default), draws
:func:`synthetic.make_synthetic` (50,000 initiatives, 200,000 funding lines, seed 0) and
exports the first N initiatives (:meth:`Catalogue.subset`: their organisations, territories,
indicators and attached funding lines) in each format. Goals for 50,000 initiatives on
2 cores: CSV < 5 s, XLSX < 40 s, GeoJSON/GPKG < 20 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import make_synthetic  # noqa: E402
from territoires.catalogue import export  # noqa: E402
from territoires.pipeline import layers  # noqa: E402
from territoires.pipeline.territories import TerritoryIndex  # noqa: E402


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--geo", default=str(REPO / "geo"))
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--formats", default="csv,xlsx,geojson,gpkg")
    args = parser.parse_args()

    t0 = time.perf_counter()
    lay = layers.load_layers(Path(args.geo))
    index = TerritoryIndex.from_layers(lay)
    print(f"layers + index: {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    synthetic = make_synthetic(index, 50_000, 200_000, seed=0)
    print(f"synthetic catalogue: {len(synthetic.initiatives)} initiatives, "
          f"{len(synthetic.funding)} funding lines ({time.perf_counter() - t0:.1f} s)")
    for size in (int(s) for s in args.sizes.split(",")):
        ids = synthetic.initiatives["id"].iloc[:size]
        cat = synthetic.subset(set(ids))
        print(f"\n== {len(cat.initiatives)} initiatives: {len(cat.organisations)} structures, "
              f"{len(cat.territories)} territories, {len(cat.indicators)} indicators, "
              f"{len(cat.funding)} funding lines ==")
        print(f"{'format':<8} {'seconds':>8} {'bytes':>12}", flush=True)
        for fmt in args.formats.split(","):
            t0 = time.perf_counter()
            data = export.export_bytes(cat, fmt, layers=lay, index=index)
            print(f"{fmt:<8} {time.perf_counter() - t0:8.2f} {len(data):12,d}", flush=True)


if __name__ == "__main__":
    main()

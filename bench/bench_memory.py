"""Memory of one server process: RSS after each step of ``ui.warm_up`` (what ``territoires
serve`` runs before it listens), no server, no browser.

Usage: ``.venv/bin/python bench/bench_memory.py [--scales seed,50k] [--allocators serve|default]
[--geo DIR] [--initiatives 50000] [--funding 200000]``

Each scale runs in a fresh Python process (``seed``: the fiches of ``data/initiatives``;
``50k``: the synthetic catalogue of :func:`common.synthetic_db`, written once to
``bench/out/``, git-ignored) and prints:

- VmRSS (``/proc/self/status``) after the imports, after each warm-up step (with its
  seconds), then after :func:`territoires.app.serve.release_memory` (what ``territoires
  serve`` does once warmed); ``--allocators serve`` (default) first calls
  :func:`territoires.app.serve.tune_allocators` like ``territoires serve``, ``default``
  leaves glibc and Arrow as they are;
- what the caches hold: per layer, its attribute columns (``memory_usage(deep=True)``) and
  its coordinates (x 16 bytes, GEOS's own overhead not counted), for the reference layers
  and the display layers of each level; the catalogue's tables; the largest arrays of
  :func:`territoires.analysis.queries.prepare`.

A server with sessions holds more (Streamlit's runtime, per-session state, the page
outputs): ``bench/bench_browser.py`` prints that process's RSS after the page visits.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mb() -> float:
    """Resident memory of this process (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _mb(n: float) -> str:
    return f"{n / 2**20:7.1f} MB"


def _deep(value: object) -> int:
    """Bytes of a frame, series or array, Python objects included."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(deep=True).sum())
    if isinstance(value, pd.Series):
        return int(value.memory_usage(deep=True))
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return value.nbytes + sum(sys.getsizeof(v) for v in value)
        return value.nbytes
    if isinstance(value, dict):
        return sum(_deep(v) for v in value.values())
    if isinstance(value, tuple):
        return sum(_deep(v) for v in value)
    if dataclasses.is_dataclass(value):
        return sum(_deep(getattr(value, f.name)) for f in dataclasses.fields(value))
    return sys.getsizeof(value)


def _layer_line(name: str, frame: object) -> str:
    import geopandas as gpd
    import shapely

    if isinstance(frame, gpd.GeoDataFrame):
        attrs = _deep(frame.drop(columns=frame.geometry.name))
        coords = int(shapely.get_num_coordinates(frame.geometry.to_numpy()).sum())
        return (f"    {name:<18} {len(frame):>7} rows  attributes {_mb(attrs)}  "
                f"{coords / 1e6:5.2f} M coordinates ({_mb(coords * 16)})")
    return f"    {name:<18} {len(frame):>7} rows  attributes {_mb(_deep(frame))}  no geometry"


def child(allocators: str) -> None:
    """Run the warm-up in this process and print the figures (see the module docstring)."""
    print(f"  start: {rss_mb():.0f} MB", flush=True)
    from territoires.app import serve

    if allocators == "serve" and hasattr(serve, "tune_allocators"):
        print(f"  allocators: {', '.join(serve.tune_allocators()) or 'unchanged'}")
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from territoires import config
    from territoires.analysis import queries
    from territoires.app import ui

    print(f"  imports: {rss_mb():.0f} MB", flush=True)
    previous = [rss_mb()]

    def report(step: str, seconds: float) -> None:
        now = rss_mb()
        print(f"  {step:<12} {seconds:5.1f} s  RSS {now:6.0f} MB ({now - previous[0]:+5.0f})",
              flush=True)
        previous[0] = now

    t0 = time.perf_counter()
    ui.warm_up(report)
    release = getattr(serve, "release_memory", None)
    if release is not None:
        release()
        print(f"  released: RSS {rss_mb():.0f} MB", flush=True)
    print(f"  warm-up {time.perf_counter() - t0:.1f} s, final RSS {rss_mb():.0f} MB", flush=True)

    geo = str(config.geo_dir())
    data = ui.app_data()
    print("  reference layers (ui._layers):")
    for name in ("regions", "departements", "epci", "communes", "qpv", "contrats_ville",
                 "cites_educatives"):
        print(_layer_line(name, getattr(data.layers, name)))
    for level in ("national", "local"):
        print(f"  display layers {level} (ui._display):")
        for name, frame in data.display(level).items():
            print(_layer_line(name, frame))
    print(f"  territory index table {_mb(_deep(data.index.table))}, points (ui._points) "
          f"{_mb(_deep(ui._points(geo)))}")
    print("  catalogue (ui._catalogue):")
    for name, table in data.catalogue.tables().items():
        print(f"    {name:<18} {len(table):>7} rows  {_mb(_deep(table))}")
    prepared = queries.prepare(data.catalogue, data.index)
    sizes = sorted(((f.name, _deep(getattr(prepared, f.name)))
                    for f in dataclasses.fields(prepared) if f.name != "index"),
                   key=lambda x: -x[1])
    print(f"  prepare: {_mb(sum(s for _, s in sizes))}, largest: "
          + ", ".join(f"{n} {s / 2**20:.1f} MB" for n, s in sizes[:5]))


def main() -> None:
    """Run each scale in a fresh process and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="seed,50k", help="seed, 50k or both: seed,50k")
    parser.add_argument("--allocators", choices=("serve", "default"), default="serve")
    parser.add_argument("--initiatives", type=int, default=50_000)
    parser.add_argument("--funding", type=int, default=200_000)
    parser.add_argument("--geo", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.allocators)
        return

    from common import built_geo_dir, seed_db, synthetic_db

    OUT.mkdir(parents=True, exist_ok=True)
    geo = Path(args.geo) if args.geo else built_geo_dir()
    for scale in args.scales.split(","):
        if scale == "seed":
            url = seed_db(Path(tempfile.mkdtemp(prefix="territoires-bm-")) / "seed.sqlite")
            label = "seed catalogue (12 fiches)"
        elif scale == "50k":
            path = OUT / f"synthetic-{args.initiatives}-{args.funding}.sqlite"
            url, _ = synthetic_db(path, geo, args.initiatives, args.funding)
            label = f"{args.initiatives} synthetic initiatives"
        else:
            parser.error(f"unknown scale {scale!r}")
        print(f"\n===== {label} (allocators: {args.allocators}) =====", flush=True)
        env = {**os.environ, "TERRITOIRES_GEO_DIR": str(geo), "TERRITOIRES_DATABASE_URL": url}
        with (OUT / "bench_memory.log").open("a") as log:  # Streamlit's warnings
            subprocess.run([sys.executable, __file__, "--child", "--allocators",
                            args.allocators], env=env, check=True, stderr=log)


if __name__ == "__main__":
    main()

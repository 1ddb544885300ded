"""Benchmark of the layer pipeline on the offline mirror.

Prints: fetch time (mirror copy), build time (goal <= 60 s) and peak memory of the build
(maximum resident set size of a child process running only ``build.build_all``), the
counts the issue asks for (QPV with a polygon, communes with a contour, EPCI with a contour,
QPV with a known population), load time of all layers (``layers.load_layers``), and for each
display layer the size in bytes of its GeoParquet file and of its GeoJSON serialisation.

Usage: ``.venv/bin/python bench/bench_layers.py [MIRROR]`` (default ``$TERRITOIRES_MIRROR`` or
``/work/shared/data``). Works in a temporary folder; the repository is not touched.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from territoires.pipeline import build, layers, sources


def main() -> int:
    """Run the benchmark and print the figures."""
    default = os.environ.get("TERRITOIRES_MIRROR") or "/work/shared/data"
    mirror = Path(sys.argv[1] if len(sys.argv) > 1 else default)
    if not mirror.is_dir():
        print(f"Miroir introuvable : {mirror}")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench_layers_") as tmp:
        cache, geo = Path(tmp) / "cache", Path(tmp) / "geo"
        t0 = time.perf_counter()
        sources.fetch_all(cache, mirror, progress=False)
        t_fetch = time.perf_counter() - t0
        # the build alone in a child process: its peak resident memory is the build's
        code = ("import sys; from pathlib import Path; from territoires import build; "
                "build.build_all(Path(sys.argv[1]), Path(sys.argv[2]))")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, str(cache), str(geo)], check=True)
        t_build = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        t0 = time.perf_counter()
        loaded = layers.load_layers(geo)
        t_load = time.perf_counter() - t0
        print(f"fetch (copie du miroir)   : {t_fetch:6.2f} s")
        print(f"build depuis le miroir    : {t_build:6.2f} s (objectif <= 60 s)")
        print(f"mémoire du build (pic RSS): {peak_mb:6.0f} Mo")
        print(f"load_layers (7 couches)   : {t_load:6.2f} s")
        print("entités :", ", ".join(f"{n} {len(g)}" for n, g in loaded.items()))
        q, c, e = loaded.qpv, loaded.communes, loaded.epci
        print(f"QPV avec contour : {int((q['geom_kind'] == 'polygon').sum())} / {len(q)} ; "
              f"population connue : {int(q['population'].notna().sum())} ; "
              f"communes avec contour : {int(c.geometry.notna().sum())} / {len(c)} ; "
              f"EPCI avec contour : {int(e.geometry.notna().sum())} / {len(e)}")
        partial = layers.read_status(geo)["layers"]["epci"].get("partial", [])
        print(f"EPCI au contour partiel : {len(partial)} ({'; '.join(partial)})")
        print(f"{'couche d’affichage':<28}{'parquet (o)':>14}{'GeoJSON (o)':>14}{'entités':>9}")
        for name in build.POLYGON_LAYERS:
            for level in layers.DISPLAY_LEVELS:
                if not layers.has_display_level(name, level):
                    continue
                path = layers.display_path(name, level, geo)
                gdf = layers.load_display(name, level, geo)
                geojson = len(gdf.to_json().encode("utf-8"))
                print(f"{name + '_' + level:<28}{path.stat().st_size:>14,}{geojson:>14,}"
                      f"{len(gdf):>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

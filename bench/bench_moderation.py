"""Benchmark: the cost of contribution on a large catalogue (SQLite, and PostgreSQL with --pg).

Figures printed:

- import of N synthetic initiatives (schema v2: each one also kept as its first version), and
  beside it, on the same database, the time to read back and serialise those snapshots (the
  part of the import that the history adds);
- the catalogue revision check that every app rerun makes (median of 1,000 calls);
- a moderator's direct edit (validate, check the base version, write, snapshot), a
  contributor's proposal, its publication, a diff between two versions (medians of 20).

Usage: ``.venv/bin/python bench/bench_moderation.py [--n 10000] [--pg URL]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from common import built_geo_dir
from synthetic import make_synthetic
from territoires.catalogue import moderation, storage
from territoires.catalogue.auth import User
from territoires.pipeline.layers import load_layers
from territoires.pipeline.territories import TerritoryIndex

MOD = User("bench-mod@example.org", "moderateur")
CONTRIB = User("bench-contrib@example.org", "contributeur")


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def baseline_import(make_store: Callable[[], storage.Store], catalogue) -> float:
    """Baseline in the same run: the same import with the history snapshots stubbed out
    (empty payloads), i.e. what the import costs without keeping versions."""
    real = storage.read_payloads
    storage.read_payloads = lambda conn, t, ids: {i: {} for i in ids}
    store = make_store()
    try:
        store.create_or_upgrade()
        t0 = time.perf_counter()
        store.upsert(catalogue)
        return time.perf_counter() - t0
    finally:
        storage.read_payloads = real
        store.drop_all()
        store.dispose()


def run(store: storage.Store, label: str, n: int, index: TerritoryIndex,
        make_store: Callable[[], storage.Store]) -> None:
    """Every figure on one database."""
    catalogue = make_synthetic(index, n_initiatives=n, n_funding=4 * n, seed=1)
    print(f"[{label}] baseline: the same import without history snapshots: "
          f"{baseline_import(make_store, catalogue):.1f} s")
    store.create_or_upgrade()
    t0 = time.perf_counter()
    report = store.upsert(catalogue)
    import_s = time.perf_counter() - t0
    ids = list(catalogue.initiatives["id"])
    t0 = time.perf_counter()
    payloads = store.transaction("bench", lambda conn: store.payloads(conn, ids))
    texts = [storage.dump_payload(p) for p in payloads.values()]
    snapshot_s = time.perf_counter() - t0
    print(f"[{label}] import of {report.inserted:,} initiatives + {len(catalogue.funding):,} "
          f"funding lines: {import_s:.1f} s, of which reading and serialising the "
          f"{len(texts):,} history snapshots ≈ {snapshot_s:.1f} s")
    rev = median_ms(store.revision, 1000)
    print(f"[{label}] catalogue revision check (each rerun): median {rev:.2f} ms")

    target = ids[n // 2]
    state = {"version": moderation.published(store, target)[1]}

    def direct_edit() -> None:
        payload, version = moderation.published(store, target)
        cat = storage.payload_catalogue(payload)
        cat.initiatives.loc[0, "title"] = f"Titre {uuid.uuid4().hex[:6]}"
        state["version"] = moderation.submit_edit(store, MOD, cat, version,
                                                  index=index).version

    print(f"[{label}] moderator's direct edit (read, validate, check, write, snapshot): "
          f"median {median_ms(direct_edit, 20):.0f} ms")

    def propose() -> None:
        payload, version = moderation.published(store, target)
        cat = storage.payload_catalogue(payload)
        cat.initiatives.loc[0, "summary"] = f"Résumé {uuid.uuid4().hex}"
        sub = moderation.submit_edit(store, CONTRIB, cat, version, index=index)
        state["pid"] = sub.proposal_id

    def publish() -> None:
        propose()
        moderation.publish(store, MOD, state["pid"], index=index)

    print(f"[{label}] contributor's proposal: median {median_ms(propose, 20):.0f} ms")
    for p in moderation.queue(store, MOD):
        moderation.reject(store, MOD, p.id, "bench")
    print(f"[{label}] proposal + publication: median {median_ms(publish, 20):.0f} ms")
    history = moderation.versions(store, target)
    diff = median_ms(lambda: moderation.diff(history[0].payload, history[-1].payload), 20)
    print(f"[{label}] history of {len(history)} versions read: "
          f"{median_ms(lambda: moderation.versions(store, target), 5):.0f} ms; "
          f"diff of two versions: {diff:.1f} ms")


def main() -> None:
    """Parse arguments and run on SQLite, then PostgreSQL if asked."""
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--pg", help="PostgreSQL URL (a throw-away schema is used)")
    args = p.parse_args()
    index = TerritoryIndex.from_layers(load_layers(built_geo_dir()))
    with tempfile.TemporaryDirectory() as tmp:
        store = storage.Store(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        run(store, "SQLite", args.n, index,
            lambda: storage.Store(f"sqlite:///{Path(tmp) / 'baseline.sqlite'}"))
        store.dispose()
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        store = storage.Store(args.pg, schema=schema)
        try:
            run(store, "PostgreSQL", args.n, index,
                lambda: storage.Store(args.pg, schema=f"{schema}_base"))
        finally:
            store.dispose()
            engine = sa.create_engine(args.pg)
            with engine.begin() as conn:
                for name in (schema, f"{schema}_base"):
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            engine.dispose()


if __name__ == "__main__":
    main()

"""The local engine: map stages over Arrow batches, in this process or in worker processes.

Every batch goes through all map stages in order (a batch's rows rejected by one stage are not
seen by the next). Batches are independent, so they can run in parallel worker processes; the
results are collected in batch order, so the output is identical for any number of workers.
Workers are started with ``spawn`` (polars and the Rust tokenizers are not fork-safe) and rebuild
the stages from their pickled form (configs plus a plain-data tokenizer spec).
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa
from tqdm.auto import tqdm

from curation.stages.base import Stage, StageCounts

log = logging.getLogger(__name__)

# A worker costs ~1-2 s to start (interpreter, imports, tokenizer); below this many rows per
# worker the start-up is not repaid.
MIN_ROWS_PER_WORKER = 10_000

_WORKER_STAGES: list[Stage] | None = None


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _init_worker(payload: bytes) -> None:
    global _WORKER_STAGES
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one process per core already
    _WORKER_STAGES = pickle.loads(payload)


def to_ipc(table: pa.Table) -> bytes:
    """Arrow IPC bytes of a table. Pickling a slice would carry its parent's whole buffers."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def _worker_run(data: bytes):
    kept, steps = run_batch(_WORKER_STAGES, from_ipc(data))
    return to_ipc(kept), [(name, to_ipc(rows_in), to_ipc(rej), secs) for name, rows_in, rej, secs in steps]


def _from_worker(result):
    kept, steps = result
    return from_ipc(kept), [
        (name, from_ipc(rows_in), from_ipc(rej), secs) for name, rows_in, rej, secs in steps
    ]


def run_batch(stages: list[Stage], batch: pa.Table):
    """All stages on one batch: (kept rows, [(stage, rows in, rejected rows, seconds), ...])."""
    steps = []
    for stage in stages:
        t0 = time.perf_counter()
        rows_in = batch.select(["source"])
        batch, rejected = stage.process(batch)
        steps.append((stage.name, rows_in, rejected, time.perf_counter() - t0))
    return batch, steps


def map_stages(
    stages: list[Stage], table: pa.Table, counts: StageCounts, batch_size: int = 4096, workers: int = 1
) -> tuple[pa.Table, list[pa.Table]]:
    """Run the map stages over a table: (kept rows, rejected rows of every stage)."""
    if not stages:
        return table, []
    batches = [table.slice(i, batch_size) for i in range(0, table.num_rows, batch_size)] or [table]
    n_workers = max(1, min(workers, len(batches), math.ceil(table.num_rows / MIN_ROWS_PER_WORKER)))
    counts.workers = n_workers
    bars = [
        tqdm(total=table.num_rows, desc=s.name, unit=" rows", disable=None, leave=False, position=i)
        for i, s in enumerate(stages)
    ]
    kept_parts: list[pa.Table] = []
    rejected_by_stage: dict[str, list[pa.Table]] = {s.name: [] for s in stages}
    start = time.perf_counter()
    try:
        if n_workers == 1:
            results = (run_batch(stages, b) for b in batches)
            pool = None
        else:
            log.info("map stages: %d batches on %d worker processes", len(batches), n_workers)
            for stage in stages:
                stage.prepare(table)
            pool = ProcessPoolExecutor(
                n_workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(pickle.dumps(stages),),
            )
            results = map(_from_worker, pool.map(_worker_run, map(to_ipc, batches)))
        for kept, steps in results:
            kept_parts.append(kept)
            for bar, (name, rows_in, rejected, seconds) in zip(bars, steps, strict=True):
                counts.record(name, rows_in, rejected, seconds)
                bar.update(rows_in.num_rows)
                if rejected.num_rows:
                    rejected_by_stage[name].append(rejected)
    finally:
        for bar in bars:
            bar.close()
        if n_workers > 1 and pool is not None:
            pool.shutdown()
    wall = time.perf_counter() - start
    if n_workers > 1:  # stage seconds are summed over workers: report wall-clock shares instead
        total = sum(counts.seconds[s.name] for s in stages) or 1.0
        for s in stages:
            counts.seconds[s.name] = counts.seconds[s.name] / total * wall
    log.info(
        "map stages: %d rows in %.2fs (%d worker%s)", table.num_rows, wall, n_workers, "s" * (n_workers > 1)
    )
    kept = pa.concat_tables(kept_parts, promote_options="default")
    # Rejects in stage order, then input order: the same whatever the batch size or worker count.
    return kept, [part for s in stages for part in rejected_by_stage[s.name]]

"""The local engine: map stages over Arrow batches, in this process or in worker processes.

Every batch goes through all map stages in order (a batch's rows rejected by one stage are not
seen by the next). Batches are independent, so they can run in parallel worker processes; results
are collected in submission order, so the output is identical for any number of workers. Batches
can be submitted while the sources are still being read, so reading overlaps with the stages.

With ``workers = N > 1`` on a small input this process is one of the N: it starts N - 1 worker
processes and reads. Each worker holds one batch at a time; when it finishes, the next waiting
batch is handed to it at once (from the pool's result thread, even while this process is busy
running a batch). This process runs a batch itself only when more than two are waiting (while
the workers are starting, or all busy), the newest one. At the end it cuts the waiting batches
into pieces of fewer than ``2 * MIN_SPLIT_ROWS`` rows and runs them newest first, while the
workers take the oldest, then collects the workers' last ones. So a small run is not
held up by start-up, and both cores stay busy to the end. On a large input
(``dedicated_reader``) it starts N workers, each holding two batches, and mostly reads: while it
runs a batch it cannot hand out the next one, and at 1,000,000 rows its worker then waited ~20 s
in all and the map phase took ~10% longer; the reading shares the cores with the workers instead.

A curate run forks its workers from its own process at its start when that is safe
(``curation.run.forked_workers``, ``curation.run.fork_safety``). Otherwise, and for ``map_stages``, workers
are forked by a ``forkserver`` (a clean process that imported the stage modules once and never ran
polars' thread pool: forking the caller itself is not safe once polars has started threads),
falling back to ``spawn``. Either way they rebuild the stages from their pickled form (configs plus
a plain-data tokenizer spec). Batches travel as
Arrow IPC bytes, with the small state the parent learned while preparing them (``Stage.prepare``,
e.g. chat-template skeletons), so workers never need the template engine or transformers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import sys
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa

from curation.run.blas_threads import limit_blas_to_one_thread
from curation.run.progress import progress_bar
from curation.run.resources import peak_rss_mb, usable_cores
from curation.stages.base import Stage, StageCounts

log = logging.getLogger(__name__)

# Below this many rows per process a worker's start-up (~0.5 s of CPU once forked from the
# server) is not repaid.
MIN_ROWS_PER_WORKER = 4_000
DEDICATED_READER_ROWS = 20_000  # from this many rows on, N workers and this process reads
MAX_IN_FLIGHT_PER_WORKER = 4  # batches waiting to be collected in order: bounds this process's memory
BACKLOG = 2  # batches waiting for a worker before this process runs one itself
MIN_SPLIT_ROWS = 256  # at the end of a run, waiting batches are halved down to fewer than twice this

_WORKER_STAGES: list[Stage] | None = None


# Imported once by the fork server, before it forks each worker: a worker starts in ~0.1 s
# instead of re-importing polars, numpy, pyarrow, tokenizers and the stages (~1 s each).
FORKSERVER_PRELOAD = ["curation.run.worker_preload"]


def worker_context():
    """``forkserver`` where available (a clean server process that never ran polars' thread pool
    forks the workers, with the modules preloaded), else ``spawn``."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        return ctx
    return mp.get_context("spawn")


def start_worker_server() -> None:
    """Start the fork server now (it imports in parallel with the caller's own set-up)."""
    if "forkserver" in mp.get_all_start_methods():
        from multiprocessing import forkserver

        worker_context()
        forkserver.ensure_running()


def default_workers() -> int:
    return usable_cores()


def to_ipc(table: pa.Table) -> bytes:
    """Arrow IPC bytes of a table. Pickling a slice would carry its parent's whole buffers."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def run_batch(stages: list[Stage], batch: pa.Table):
    """All stages on one batch: (kept rows, [(stage, rows in, rejected rows, seconds), ...])."""
    steps = []
    for stage in stages:
        t0 = time.perf_counter()
        rows_in = batch.select(["source"])
        batch, rejected = stage.process(batch)
        steps.append((stage.name, rows_in, rejected, time.perf_counter() - t0))
    return batch, steps


class _NoPandas:
    """A meta path finder that makes ``import pandas`` raise ImportError."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not used by the map-stage workers")
        return None


def _keep_pandas_out() -> None:
    """No stage uses pandas, but pyarrow imports it (~0.35 s, as long as the fork server's whole
    preload) the first time it builds an array from Python objects; with ``import pandas``
    failing, pyarrow carries on without it. Done once the worker has started: the caller's main
    module, which a worker imports first, may import pandas itself."""
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


def die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the process that started it dies, so that a
    run killed with SIGKILL or SIGTERM leaves no worker behind blocked on its pipe (a fork-server
    worker's parent is the fork server, which exits when the run does). And leave Ctrl-C to the
    run: it reaches every process of the terminal's group, and the run itself stops its workers
    and says what to do (a worker printing its own KeyboardInterrupt traceback would bury that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above: it is gone already
        os._exit(1)


def set_up_worker_process() -> None:
    """Thread settings for a process that runs map stages, one per core (local or Ray workers)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one process per core already
    limit_blas_to_one_thread()  # its spinning threads would take the core from the other process


def _init_worker(payload: bytes) -> None:
    global _WORKER_STAGES
    die_with_parent()
    set_up_worker_process()
    _keep_pandas_out()
    _WORKER_STAGES = pickle.loads(payload)


def _worker_run(data: bytes, states: bytes):
    for stage, state in zip(_WORKER_STAGES, pickle.loads(states), strict=True):
        if state is not None:
            stage.update_state(state)
    kept, steps = run_batch(_WORKER_STAGES, from_ipc(data))
    steps = [(name, to_ipc(rows_in), to_ipc(rej), secs) for name, rows_in, rej, secs in steps]
    return to_ipc(kept), steps, peak_rss_mb()


def _from_worker(result, engine=None):
    kept, steps, peak = result
    if engine is not None:
        engine.worker_peak_rss_mb = max(engine.worker_peak_rss_mb, peak)
    return from_ipc(kept), [
        (name, from_ipc(rows_in), from_ipc(rej), secs) for name, rows_in, rej, secs in steps
    ]


class MemorySink:
    """Collects the map stages' output in memory (library use on a table in memory)."""

    def __init__(self, stages: list[Stage]):
        self.kept: list[pa.Table] = []
        self.rejected: dict[str, list[pa.Table]] = {s.name: [] for s in stages}
        self.stage_names = [s.name for s in stages]

    def add_kept(self, table: pa.Table) -> None:
        self.kept.append(table)

    def add_rejected(self, stage: str, table: pa.Table) -> None:
        self.rejected[stage].append(table)

    @property
    def batches(self) -> int:
        return len(self.kept)

    def result(self) -> tuple[pa.Table, list[pa.Table]]:
        kept = pa.concat_tables(self.kept, promote_options="default")
        # Rejects in stage order, then input order: the same whatever the batch size or worker count.
        return kept, [part for name in self.stage_names for part in self.rejected[name]]


def collect_steps(result, sink, counts: StageCounts, bars=None) -> None:
    """Record one batch's result (kept rows, per-stage steps) in the counters and the sink."""
    kept, steps = result
    sink.add_kept(kept)
    for i, (name, rows_in, rejected, seconds) in enumerate(steps):
        counts.record(name, rows_in, rejected, seconds)
        if bars is not None:
            bars[i].update(rows_in.num_rows)
        if rejected.num_rows:
            sink.add_rejected(name, rejected)


class _Slot:
    """One submitted batch: waiting (``batch``, and the stage ``states`` learned from it), given to a worker
    (``future``), or run here (``result``)."""

    __slots__ = ("batch", "states", "future", "result")

    def __init__(self, batch: pa.Table, states: bytes):
        self.batch, self.states, self.future, self.result = batch, states, None, None

    def run_here(self, stages: list[Stage]) -> None:
        self.result = run_batch(stages, self.batch)
        self.batch = self.states = None

    def ready(self) -> bool:
        return self.result is not None or (self.future is not None and self.future.done())


class LocalEngine:
    """Submit batches, then ``finish()``; the output goes to a sink (default: memory, and
    ``finish()`` returns (kept rows, rejected rows of every stage))."""

    name = "local"

    def __init__(
        self,
        stages: list[Stage],
        counts: StageCounts,
        workers: int = 1,
        sink=None,
        dedicated_reader: bool = False,
        forked=None,
    ):
        """``forked``: a ``ForkedWorkers`` of the right size started for this engine (else the
        workers come from the fork server)."""
        self.stages = stages
        self.counts = counts
        self.workers = max(1, workers)
        counts.workers = self.workers
        self.sink = sink if sink is not None else MemorySink(stages)
        self.worker_peak_rss_mb = 0.0  # the largest peak RSS any worker process reported
        self.pending: deque[_Slot] = deque()  # every batch not yet collected, in submission order
        self.waiting: deque[_Slot] = deque()  # batches no process has started yet
        self.dedicated_reader = dedicated_reader
        self.bars = [
            progress_bar(desc=s.name, unit=" rows", disable=None, leave=False, position=i)
            for i, s in enumerate(stages)
        ]
        self.start = time.perf_counter()
        self.submit_seconds = 0.0  # time the caller spent in submit(): stages inline, or waiting on workers
        self.pool = None
        if self.workers > 1:
            log.info("map stages on %d worker processes", self.workers)
            # This process is the N-th worker, unless the input is large enough for a reader of its own.
            self.pool_size = self.workers if dedicated_reader else self.workers - 1
            counts.worker_processes = self.pool_size
            # A worker holds one batch (the others wait here, where this process can take them);
            # with a dedicated reader, two (the reader never runs one, and the next is there at once).
            self.in_pool_limit = self.pool_size * (2 if dedicated_reader else 1)
            self.in_pool = 0
            self._lock = threading.RLock()  # waiting, in_pool: shared with the pool's result thread
            self._started = self._closing = False
            self._launcher = None
            if forked is not None:
                if forked.n != self.pool_size:
                    raise ValueError(f"{forked.n} forked workers for a pool of {self.pool_size}")
                self.pool = forked.executor
                counts.worker_start = "fork"
                forked.send_stages(stages)
                self._launch()
            else:
                context = worker_context()
                counts.worker_start = context.get_start_method()
                self.pool = ProcessPoolExecutor(
                    self.pool_size,
                    mp_context=context,
                    initializer=_init_worker,
                    initargs=(pickle.dumps(stages),),
                )
                # Launching a worker blocks until the fork server has started it: launch from a
                # thread, which then hands out the batches read meanwhile; this process reads on.
                self._launcher = threading.Thread(target=self._launch, daemon=True)
                self._launcher.start()

    def _launch(self) -> None:
        self.pool.submit(os.getpid)
        with self._lock:
            self._started = True
            self._hand_out()

    def _hand_out(self) -> None:
        """Give waiting batches, oldest first, to workers with room (the lock held)."""
        while self._started and not self._closing and self.waiting and self.in_pool < self.in_pool_limit:
            slot = self.waiting.popleft()
            self.in_pool += 1
            # Serialized only now: a batch this process runs itself never is.
            slot.future = self.pool.submit(_worker_run, to_ipc(slot.batch), slot.states)
            slot.batch = slot.states = None
            slot.future.add_done_callback(self._worker_done)

    def _worker_done(self, _future) -> None:  # in the pool's result thread
        with self._lock:
            self.in_pool -= 1
            self._hand_out()

    def submit(self, batch: pa.Table) -> None:
        t0 = time.perf_counter()
        try:
            self._submit(batch)
        finally:
            self.submit_seconds += time.perf_counter() - t0

    def _submit(self, batch: pa.Table) -> None:
        if self.pool is None:
            self._collect(run_batch(self.stages, batch))
            return
        # What the stages learn from this batch (e.g. chat-template skeletons) travels with it.
        for stage in self.stages:
            stage.prepare(batch)
        states = pickle.dumps([stage.shared_state() for stage in self.stages])
        slot = _Slot(batch, states)
        self.pending.append(slot)
        with self._lock:
            self.waiting.append(slot)
            self._hand_out()
        if not self.dedicated_reader and len(self.waiting) > BACKLOG:
            self._run_newest_waiting()
        self._collect_ready()

    def _run_newest_waiting(self) -> bool:
        """Run the newest batch no process has started here (False: there is none)."""
        with self._lock:
            slot = self.waiting.pop() if self.waiting else None
        if slot is None:
            return False
        slot.run_here(self.stages)
        return True

    def _split_waiting(self) -> None:
        """Halve the waiting batches until each has fewer than ``2 * MIN_SPLIT_ROWS`` rows (results
        keep their order). Done once the input has ended: then the workers take the oldest pieces
        and this process the newest, and all finish within about one small piece of each other.
        Left whole, a large batch taken by a worker last leaves this process idle till it is done."""
        with self._lock:
            pieces: deque[_Slot] = deque()
            for slot in self.waiting:
                parts = [slot.batch]
                while parts[0].num_rows >= 2 * MIN_SPLIT_ROWS:
                    parts = [
                        half
                        for p in parts
                        for half in (p.slice(0, p.num_rows // 2), p.slice(p.num_rows // 2))
                    ]
                split = [_Slot(part, slot.states) for part in parts]
                at = self.pending.index(slot)
                del self.pending[at]
                for k, piece in enumerate(split):
                    self.pending.insert(at + k, piece)
                pieces.extend(split)
            self.waiting = pieces

    def _collect_ready(self, bounded: bool = True) -> None:
        """Collect finished batches in submission order; while reading (``bounded``), also wait
        for the oldest when too many are in flight, which bounds this process's memory."""
        while self.pending and (
            self.pending[0].ready()
            or (bounded and len(self.pending) > MAX_IN_FLIGHT_PER_WORKER * self.workers)
        ):
            self._collect_next()

    def _collect_next(self) -> None:
        """Collect the oldest batch (results stay in submission order): run it here if no worker
        has started it, else wait for its worker."""
        slot = self.pending.popleft()
        with self._lock:
            mine = slot.future is None and slot.result is None
            if mine:
                self.waiting.remove(slot)
        if mine:
            slot.run_here(self.stages)
        result = slot.result if slot.future is None else _from_worker(slot.future.result(), self)
        slot.result = slot.future = None
        self._collect(result)

    def _collect(self, result) -> None:
        collect_steps(result, self.sink, self.counts, self.bars)

    def finish(self, empty: pa.Table):
        try:
            if self.pool is not None:
                # The waiting batches, in small pieces, run here newest first while the workers
                # take the oldest.
                self._split_waiting()
                while self._run_newest_waiting():
                    # Never wait on a worker here: the pieces are already in memory, and
                    # waiting would leave this process idle while pieces are still to run.
                    self._collect_ready(bounded=False)
            while self.pending:
                self._collect_next()
        finally:
            self.close()
        if not self.sink.batches:  # no input at all: run once on the empty table for the column layout
            self._collect(run_batch(self.stages, empty))
        wall = time.perf_counter() - self.start
        if self.workers > 1:  # stage seconds are summed over workers: report wall-clock shares
            total = sum(self.counts.seconds[s.name] for s in self.stages) or 1.0
            for s in self.stages:
                self.counts.seconds[s.name] = self.counts.seconds[s.name] / total * wall
        return self.sink.result()

    def close(self) -> None:
        for bar in self.bars:
            bar.close()
        if self.pool is not None:
            with self._lock:
                self._closing = True  # no more hand-outs from the result thread
            if self._launcher is not None:
                self._launcher.join()
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def workers_for(rows: int, workers: int) -> int:
    """Worker processes worth starting for about this many rows."""
    return max(1, min(workers, -(-rows // MIN_ROWS_PER_WORKER)))


def map_stages(
    stages: list[Stage], table: pa.Table, counts: StageCounts, batch_size: int = 4096, workers: int = 1
) -> tuple[pa.Table, list[pa.Table]]:
    """Run the map stages over a table in memory: (kept rows, rejected rows of every stage)."""
    engine = LocalEngine(stages, counts, workers_for(table.num_rows, workers))
    try:
        for i in range(0, table.num_rows, batch_size):
            engine.submit(table.slice(i, batch_size))
    except BaseException:
        engine.close()
        raise
    return engine.finish(table.slice(0, 0))

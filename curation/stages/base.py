"""The stage base class: a stage *scores* a batch (annotation columns) and then *decides*.

A subclass writes two small methods:

* ``score(batch) -> {column: values}``: pure function of an Arrow batch; the columns are kept
  in the output so thresholds can be changed without recomputing;
* ``decide(batch) -> reasons``: for each row ``None`` (keep) or a short reject reason, computed
  from the batch *with its score columns added*.

The base class gives every stage batching, per-source counters of reject reasons, timing and a
progress bar, and splits each batch into kept rows and rejected rows (with ``reject_stage`` and
``reject_reason``). Stages hold no hidden global state, so the same stage can run under any
engine that maps a function over Arrow batches.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stages.plain_config import plain

log = logging.getLogger(__name__)


class Stage:
    name: str = "stage"

    def score(self, batch: pa.Table) -> dict[str, pa.Array | np.ndarray | list]:
        return {}

    def decide(self, batch: pa.Table) -> Sequence[str | None]:
        return [None] * batch.num_rows

    def prepare(self, table: pa.Table) -> None:
        """Optional: look at a batch in the parent process before a worker processes it."""

    def shared_state(self):
        """Optional: small state learned in ``prepare`` that travels to workers with each batch."""
        return None

    def update_state(self, state) -> None:
        """Merge ``shared_state()`` from the parent (in a worker)."""

    def __getstate__(self):
        """Pickled for worker processes with configs as plain data (curation.stages.plain_config)."""
        return {k: plain(v) for k, v in self.__dict__.items()}

    # -- machinery ---------------------------------------------------------------------------

    def annotate(self, batch: pa.Table) -> pa.Table:
        for column, values in self.score(batch).items():
            arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
            if column in batch.column_names:
                batch = batch.set_column(batch.column_names.index(column), column, arr)
            else:
                batch = batch.append_column(column, arr)
        return batch

    def process(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Annotate, decide, and split one batch into (kept, rejected)."""
        batch = self.annotate(batch)
        decided = self.decide(batch)
        if isinstance(decided, pa.ChunkedArray):
            decided = decided.combine_chunks()
        reasons = (
            decided.cast(pa.string())
            if isinstance(decided, pa.Array)
            else pa.array(decided.tolist() if isinstance(decided, np.ndarray) else list(decided), pa.string())
        )
        if len(reasons) != batch.num_rows:
            raise RuntimeError(
                f"stage {self.name}: decide() returned {len(reasons)} values for {batch.num_rows} rows"
            )
        rejected_mask = pc.is_valid(reasons)
        if reasons.null_count == len(reasons):  # nothing rejected (the common case): no copies
            return batch, _with_reject_columns(batch.slice(0, 0), self.name, reasons.slice(0, 0))
        kept = batch.filter(pc.invert(rejected_mask))
        rejected = _with_reject_columns(batch.filter(rejected_mask), self.name, reasons.filter(rejected_mask))
        return kept, rejected


def _with_reject_columns(rows: pa.Table, stage: str, reasons: pa.Array) -> pa.Table:
    rows = rows.append_column("reject_stage", pa.array([stage] * rows.num_rows, pa.string()))
    return rows.append_column("reject_reason", reasons)


class StageCounts:
    """Per-stage, per-source counters of rows in, rows removed by reason, and time spent."""

    def __init__(self) -> None:
        self.removed: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        self.rows_in: dict[str, Counter] = defaultdict(Counter)
        self.seconds: dict[str, float] = defaultdict(float)
        self.order: list[str] = []
        self.workers = 1
        self.worker_processes = 0  # processes started for the map stages (besides this one)
        self.worker_start: str | None = None  # how: "fork" (from this process), "forkserver", "spawn"

    def record(self, stage: str, batch_in: pa.Table, rejected: pa.Table, seconds: float) -> None:
        if stage not in self.order:
            self.order.append(stage)
        self.seconds[stage] += seconds
        for src, n in _value_counts(batch_in["source"]).items():
            self.rows_in[stage][src] += n
        if rejected.num_rows:
            # Counted in Python: an Arrow group-by would import Arrow's query engine (~75 ms once
            # per process) for what are mostly a few rejected rows per batch.
            pairs = zip(rejected["source"].to_pylist(), rejected["reject_reason"].to_pylist(), strict=True)
            for (s, r), n in Counter(pairs).items():
                self.removed[stage][s][r] += n

    def state(self) -> dict:
        """Plain data for a checkpoint (``from_state`` restores it)."""
        return {
            "order": self.order,
            "workers": self.workers,
            "worker_processes": self.worker_processes,
            "worker_start": self.worker_start,
            "seconds": dict(self.seconds),
            "rows_in": {k: dict(v) for k, v in self.rows_in.items()},
            "removed": {k: {s: dict(c) for s, c in v.items()} for k, v in self.removed.items()},
        }

    @classmethod
    def from_state(cls, state: dict) -> StageCounts:
        counts = cls()
        counts.order = list(state["order"])
        counts.workers = state["workers"]
        counts.worker_processes = state.get("worker_processes", 0)
        counts.worker_start = state.get("worker_start")
        counts.seconds.update(state["seconds"])
        for k, v in state["rows_in"].items():
            counts.rows_in[k].update(v)
        for k, v in state["removed"].items():
            for src, c in v.items():
                counts.removed[k][src].update(c)
        return counts

    def removed_total(self, stage: str, source: str) -> int:
        return sum(self.removed[stage][source].values())

    def to_dict(self) -> dict:
        return {
            stage: {
                "seconds": round(self.seconds[stage], 4),
                "rows_in": dict(self.rows_in[stage]),
                "removed": {src: dict(c) for src, c in self.removed[stage].items()},
            }
            for stage in self.order
        }


def _value_counts(arr) -> dict[str, int]:
    vc = pc.value_counts(arr)
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))

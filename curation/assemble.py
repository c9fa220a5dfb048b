"""Assembling the run's output by streaming the staged files once.

The global stages decided, per staged row (by ``_pos``): train (with how many mix copies),
validation, or rejected by a global stage (with reason, ``duplicate_of``) and its ``dup_cluster``.
``Plan`` holds those decisions as compact columns; ``assemble`` reads the staged kept files in
order, one at a time, and streams each row to its place. Shards are written by ``ShardWriter``:
bounded in rows, each to a hidden temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.errors import AccountingError
from curation.faults import crash_point
from curation.io.files import sha256_file
from curation.staging import POS, Staging

TRAIN, VALIDATION, REJECTED = 0, 1, 2
REJECT_COLUMNS = [
    pa.field("reject_stage", pa.string()),
    pa.field("reject_reason", pa.string()),
    pa.field("duplicate_of", pa.string()),
]


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table with exactly the schema's columns (missing ones null), cast to its types."""
    n = table.num_rows
    arrays = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type) for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def with_fields(schema: pa.Schema, fields: list[pa.Field]) -> pa.Schema:
    for f in fields:
        if f.name not in schema.names:
            schema = schema.append(f)
    return schema


class ShardWriter:
    """``<prefix>-0000i-of-0000N.parquet`` shards of at most max_rows rows, N known up front."""

    def __init__(self, out: Path, prefix: str, total_rows: int, max_rows: int, compression: str, schema):
        self.out, self.prefix, self.max_rows, self.schema = out, prefix, max_rows, schema
        self.total = total_rows
        self.n_shards = max(1, math.ceil(total_rows / max_rows))
        self.compression = None if compression == "none" else compression
        self.shards: list[dict] = []
        self.rows_by_source: Counter = Counter()
        self._writer = None
        self._tmp = None
        self._rows_in_shard = 0
        self.written = 0

    def _open(self) -> None:
        name = self._name()
        fd, self._tmp = tempfile.mkstemp(prefix=f".tmp-{name}.", dir=self.out)
        os.close(fd)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=self.compression)
        self._rows_in_shard = 0

    def _name(self) -> str:
        return f"{self.prefix}-{len(self.shards):05d}-of-{self.n_shards:05d}.parquet"

    def _close_shard(self) -> None:
        self._writer.close()
        path = self.out / self._name()
        os.replace(self._tmp, path)
        self.shards.append(
            {
                "file": path.name,
                "split": self.prefix,
                "rows": self._rows_in_shard,
                "sha256": sha256_file(path),
            }
        )
        self._writer = self._tmp = None
        crash_point(f"shard:{len(self.shards)}")

    def write(self, table: pa.Table, count_rows: pa.Table | None = None) -> None:
        """Append rows; ``count_rows`` (default: the table) is what the per-source counts see."""
        table = conform(table, self.schema)
        counted = table if count_rows is None else count_rows
        if counted.num_rows:
            vc = pc.value_counts(counted["source"])
            self.rows_by_source.update(
                dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))
            )
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                self._open()
            take = min(self.max_rows - self._rows_in_shard, table.num_rows - start)
            self._writer.write_table(table.slice(start, take))
            self._rows_in_shard += take
            self.written += take
            start += take
            if self._rows_in_shard == self.max_rows:
                self._close_shard()

    def close(self) -> list[dict]:
        if self._writer is None and not self.shards:  # no rows: one empty shard with the schema
            self._open()
        if self._writer is not None:
            self._close_shard()
        if self.written != self.total or len(self.shards) != self.n_shards:
            raise AccountingError(
                f"{self.prefix}: wrote {self.written} rows in {len(self.shards)} shards, "
                f"expected {self.total} in {self.n_shards}"
            )
        return self.shards

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)


def build_plan(n_rows: int, train: pa.Table, validation: pa.Table, rejected: list[pa.Table]) -> pl.DataFrame:
    """One row per staged position: destination, copies, cluster and reject columns."""

    def frame(t: pa.Table, dest: int) -> pl.DataFrame:
        cols = {POS: pl.Series(t[POS].to_numpy(), dtype=pl.Int64)}
        for name in ("dup_cluster", "duplicate_of", "reject_stage", "reject_reason"):
            cols[name] = (
                pl.Series(t[name].combine_chunks().cast(pa.string()))
                if name in t.column_names and t.num_rows
                else pl.Series([None] * t.num_rows, dtype=pl.String)
            ).cast(pl.String)
        df = pl.DataFrame(cols).with_columns(
            pl.col("reject_stage", "reject_reason").cast(pl.Categorical),  # few distinct values
            dest=pl.lit(dest, pl.Int8),
        )
        if dest == TRAIN:
            copies = pl.Series(t["mix_copies"].to_numpy(), dtype=pl.Int64)
        else:
            copies = pl.Series(np.zeros(t.num_rows, dtype=np.int64))
        return df.with_columns(copies=copies)

    parts = [frame(train, TRAIN), frame(validation, VALIDATION), *(frame(r, REJECTED) for r in rejected)]
    plan = pl.concat(parts, how="vertical").sort(POS)
    if plan.height != n_rows or not (plan[POS].to_numpy() == np.arange(n_rows)).all():
        raise AccountingError(
            f"global stages accounted for {plan.height} of {n_rows} staged rows (or counted a row twice)"
        )
    return plan


def assemble(
    staging: Staging,
    plan: pl.DataFrame,
    writers: dict[str, ShardWriter],
    global_stage_names: list[str],
) -> dict[str, list[Path]]:
    """Stream the staged rows to the train and validation writers; rows rejected by a global
    stage go to staged reject files per stage (they are written after the map rejects)."""
    global_rejects: dict[str, list[Path]] = {name: [] for name in global_stage_names}
    for path, pos0, n in staging.kept_files:
        table = pq.read_table(path)
        p = plan.slice(pos0, n)
        dest = p["dest"].to_numpy()
        cluster = p["dup_cluster"].to_arrow().cast(pa.string())
        table = table.append_column("dup_cluster", cluster)
        idx = np.flatnonzero(dest == TRAIN)
        if len(idx):
            copies = p["copies"].to_numpy()[idx]
            rows = np.repeat(idx, copies)
            copy_no = np.arange(len(rows)) - np.repeat(np.cumsum(copies) - copies, copies)
            train = table.take(pa.array(rows)).append_column("mix_copy", pa.array(copy_no, pa.int32()))
            writers["train"].write(train, count_rows=table.take(pa.array(idx)).select(["source"]))
        idx = np.flatnonzero(dest == VALIDATION)
        if len(idx) and "validation" in writers:
            writers["validation"].write(table.take(pa.array(idx)))
        idx = np.flatnonzero(dest == REJECTED)
        if len(idx):
            rej = table.take(pa.array(idx))
            for name in ("reject_stage", "reject_reason", "duplicate_of"):
                rej = rej.append_column(name, p[name].to_arrow().cast(pa.string()).take(pa.array(idx)))
            for stage in global_stage_names:
                part = rej.filter(pc.equal(rej["reject_stage"], stage))
                if part.num_rows:
                    out = staging.root / f"global-{stage}-{len(global_rejects[stage]):06d}.parquet"
                    pq.write_table(part, out, compression="lz4")
                    global_rejects[stage].append(out)
    return global_rejects

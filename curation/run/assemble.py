"""Assembling the run's output: each shard is one independent task over the staged files.

The global stages decided, per staged row (by ``_pos``): train (with how many mix copies),
validation, or rejected by a global stage (with reason, ``duplicate_of``) and its ``dup_cluster``.
``build_plan`` holds those decisions as compact columns. ``layout`` turns the plan into *pieces*
(the rows one staged file gives one output, counted from the plan, in output order) and cuts
them into shards of at most ``shard_max_rows`` rows. ``write_shard`` writes one shard: it reads
only its pieces, writes to a hidden temporary name and renames when complete. Shards are
independent, so the local engine writes them from a small thread pool and the Ray engine as
Ray tasks, with the same bytes.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.errors import AccountingError
from curation.io.files import sha256_file
from curation.run.faults import crash_point
from curation.run.output import readable_by_umask
from curation.run.staging import POS, Staging, read_staged

TRAIN, VALIDATION, REJECTED = 0, 1, 2
ROW_GROUP_ROWS = 16_384  # rows per Parquet row group in the output shards
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


@dataclass(frozen=True)
class Piece:
    """The rows one input gives one output, in order: ``kind`` is ``train`` / ``validation`` /
    ``rejected`` (by a global stage) from the staged kept file ``path`` (plan rows ``pos0`` to
    ``pos0 + n``), ``file`` (a staged reject file, whole) or ``table`` (rows in memory)."""

    kind: str
    rows: int
    path: Path | None = None
    pos0: int = 0
    n: int = 0
    table: pa.Table | None = None


@dataclass(frozen=True)
class ShardTask:
    """One shard: ``<prefix>-<index>-of-<n_shards>.parquet`` from slices of pieces."""

    out: Path
    prefix: str
    index: int
    n_shards: int
    schema: pa.Schema
    compression: str | None
    parts: tuple[tuple[Piece, int, int], ...]  # (piece, first row, end row)

    @property
    def name(self) -> str:
        return f"{self.prefix}-{self.index:05d}-of-{self.n_shards:05d}.parquet"

    @property
    def rows(self) -> int:
        return sum(stop - start for _, start, stop in self.parts)

    def localized(self, plan: pa.Table) -> tuple[ShardTask, pa.Table]:
        """This task with its own compact copy of the plan rows it needs (to ship to a worker)."""
        parts, slices, at = [], [], 0
        for piece, start, stop in self.parts:
            if piece.path is not None and piece.n:
                slices.append(plan.slice(piece.pos0, piece.n))
                piece = replace(piece, pos0=at)
                at += piece.n
            parts.append((piece, start, stop))
        sub = pa.concat_tables(slices).combine_chunks() if slices else plan.slice(0, 0)
        return replace(self, parts=tuple(parts)), sub


def shard_tasks(
    out: Path, prefix: str, pieces: list[Piece], max_rows: int, compression: str, schema: pa.Schema
) -> list[ShardTask]:
    """Cut the pieces, in order, into shards of at most ``max_rows`` rows (one empty shard with the
    schema when there are none)."""
    total = sum(p.rows for p in pieces)
    n_shards = max(1, math.ceil(total / max_rows))
    codec = None if compression == "none" else compression
    shards: list[list] = [[] for _ in range(n_shards)]
    at = 0  # rows before the current piece
    for piece in pieces:
        start = 0
        while start < piece.rows:
            k = (at + start) // max_rows
            stop = min(piece.rows, (k + 1) * max_rows - at)
            shards[k].append((piece, start, stop))
            start = stop
        at += piece.rows
    return [
        ShardTask(out, prefix, k, n_shards, schema, codec, tuple(parts)) for k, parts in enumerate(shards)
    ]


def piece_rows(piece: Piece, plan: pa.Table) -> pa.Table:
    """All of a piece's rows (checked against the count the layout expects)."""
    if piece.kind == "table":
        table = piece.table
    elif piece.kind == "file":
        table = read_staged(piece.path)
    else:
        table = read_staged(piece.path)
        p = plan.slice(piece.pos0, piece.n)
        table = table.append_column("dup_cluster", p["dup_cluster"].cast(pa.string()))
        dest = p["dest"].to_numpy()
        if piece.kind == "train":
            idx = np.flatnonzero(dest == TRAIN)
            copies = p["copies"].to_numpy()[idx]
            rows = np.repeat(idx, copies)
            copy_no = np.arange(len(rows)) - np.repeat(np.cumsum(copies) - copies, copies)
            table = table.take(pa.array(rows)).append_column("mix_copy", pa.array(copy_no, pa.int32()))
        elif piece.kind == "validation":
            table = table.take(pa.array(np.flatnonzero(dest == VALIDATION)))
        else:
            idx = pa.array(np.flatnonzero(dest == REJECTED))
            table = table.take(idx)
            for name in ("reject_stage", "reject_reason", "duplicate_of"):
                table = table.append_column(name, p[name].cast(pa.string()).take(idx))
    if table.num_rows != piece.rows:
        raise AccountingError(
            f"{piece.kind} rows from {piece.path or 'memory'}: {table.num_rows}, the plan expected {piece.rows}"
        )
    return table


def write_shard(task: ShardTask, plan: pa.Table) -> tuple[dict, dict]:
    """Write one shard (atomically): its manifest entry and its rows per source (training rows
    are counted once, not per mix copy). Pieces are gathered into row groups of up to
    ``ROW_GROUP_ROWS`` rows (a staged reject file may hold a handful of rows: one row group each
    would make the shard slow to write and to read)."""
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{task.name}.", dir=task.out)
    os.close(fd)
    by_source: Counter = Counter()
    try:
        with pq.ParquetWriter(tmp, task.schema, compression=task.compression) as writer:
            for group in _row_groups(task, plan):
                table = conform(group, task.schema)
                writer.write_table(table)
                counted = (
                    table.filter(pc.equal(table["mix_copy"], 0))
                    if "mix_copy" in table.column_names
                    else table
                )
                vc = pc.value_counts(counted["source"])
                by_source.update(
                    dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))
                )
        path = task.out / task.name
        readable_by_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    entry = {"file": task.name, "split": task.prefix, "rows": task.rows, "sha256": sha256_file(path)}
    return entry, dict(by_source)


def _row_groups(task: ShardTask, plan: pa.Table):
    """The shard's rows in tables of ``ROW_GROUP_ROWS`` rows (the last one shorter)."""
    buffered: list[pa.Table] = []
    rows = 0
    for piece, start, stop in task.parts:
        table = piece_rows(piece, plan).slice(start, stop - start)
        while table.num_rows:
            take = min(table.num_rows, ROW_GROUP_ROWS - rows)
            buffered.append(table.slice(0, take))
            table, rows = table.slice(take), rows + take
            if rows == ROW_GROUP_ROWS:
                yield pa.concat_tables(buffered, promote_options="permissive")
                buffered, rows = [], 0
    if rows:
        yield pa.concat_tables(buffered, promote_options="permissive")


def write_shards_locally(tasks: list[ShardTask], plan: pa.Table, threads: int = 2):
    """Write the shards from a small thread pool (Parquet reading, compression and writing release
    the GIL); results in task order, ``shard:<n>`` crash points after each."""
    if threads <= 1:
        results = map(lambda t: write_shard(t, plan), tasks)
        return _in_order(results)
    with ThreadPoolExecutor(threads) as pool:
        return _in_order(pool.map(lambda t: write_shard(t, plan), tasks))


def _in_order(results) -> list[tuple[dict, dict]]:
    done = []
    for result in results:
        done.append(result)
        crash_point(f"shard:{len(done)}")
    return done


def build_plan(n_rows: int, train: pa.Table, validation: pa.Table, rejected: list[pa.Table]) -> pa.Table:
    """One row per staged position: destination, copies, cluster and reject columns.

    Built with numpy scatters and one Arrow ``take`` per string column (no sort of a frame of
    strings); the reject columns are dictionary-encoded (a few distinct values)."""
    parts = [(train, TRAIN), (validation, VALIDATION), *((r, REJECTED) for r in rejected)]
    pos = np.concatenate([t[POS].to_numpy() for t, _ in parts]) if parts else np.zeros(0, np.int64)
    if len(pos) != n_rows or (n_rows and not (np.bincount(pos, minlength=n_rows) == 1).all()):
        raise AccountingError(
            f"global stages accounted for {len(pos)} of {n_rows} staged rows (or counted a row twice)"
        )
    order = np.empty(n_rows, dtype=np.int64)  # plan row -> its place in the parts' concatenation
    order[pos] = np.arange(n_rows)
    order = pa.array(order)
    del pos
    dest = np.repeat(np.array([d for _, d in parts], dtype=np.int8), [t.num_rows for t, _ in parts])
    copies = np.zeros(n_rows, dtype=np.int64)
    copies[: train.num_rows] = train["mix_copies"].to_numpy() if train.num_rows else 0
    columns = {
        POS: pa.array(np.arange(n_rows)),
        "dest": pa.array(dest).take(order),
        "copies": pa.array(copies).take(order),
    }
    for name in ("dup_cluster", "duplicate_of", "reject_stage", "reject_reason"):
        chunks = [
            t[name].combine_chunks().cast(pa.string())
            if name in t.column_names
            else pa.nulls(t.num_rows, pa.string())
            for t, _ in parts
        ]
        column = pa.concat_arrays(chunks) if chunks else pa.nulls(0, pa.string())
        if name.startswith("reject_"):
            column = pc.dictionary_encode(column)
        columns[name] = column.take(order)
        del chunks, column
    return pa.table(columns)


def layout(staging: Staging, plan: pa.Table, quarantine: pa.Table) -> dict[str, list[Piece]]:
    """Per output, its pieces in order: training and validation rows file by file; rejects of the
    map stages (their staged files, stage by stage), then the global stages' rejects file by file
    (each staged file is read once per output); the quarantine. Row counts come from the plan,
    without reading any staged file."""
    files = staging.kept_files
    n_files = len(files)
    file_of = np.repeat(np.arange(n_files), [n for _, _, n in files])
    dest = plan["dest"].to_numpy()
    train = np.bincount(
        file_of, weights=np.where(dest == TRAIN, plan["copies"].to_numpy(), 0), minlength=n_files
    )
    validation = np.bincount(file_of, weights=dest == VALIDATION, minlength=n_files)
    rejected = np.bincount(file_of, weights=dest == REJECTED, minlength=n_files)

    def kept(kind: str, counts) -> list[Piece]:
        return [
            Piece(kind, int(c), path, pos0, n) for (path, pos0, n), c in zip(files, counts, strict=True) if c
        ]

    rejects = [
        Piece("file", staging.rows_of(f), f)
        for name in staging.stage_names
        for f in staging.reject_files.get(name, [])
    ]
    rejects += kept("rejected", rejected)
    return {
        "train": kept("train", train),
        "validation": kept("validation", validation),
        "rejects": rejects,
        "quarantine": [Piece("table", quarantine.num_rows, table=quarantine)] if quarantine.num_rows else [],
    }

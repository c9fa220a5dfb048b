"""The staging area: map-stage output on disk, compact columns in memory.

Every batch that leaves the map stages is written to its own Arrow IPC file (``kept-*.arrow``;
rejected rows to ``rejects-<stage>-*.arrow``), its MinHash signatures are appended to one raw
``uint32`` file read back through a memory map, and only a few compact columns per row (id,
source, token count, refusal flag, task type, dedup keys and LSH band keys, and ``_pos``, the
row's position in the staged run) stay in memory for the global stages. Peak memory therefore
grows with those columns, not with the text. Each final shard is written by a task that reads
only the staged files it needs (``curation.run.assemble``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.sketch_stage import BANDS, SIGNATURE, list_matrix
from curation.run.faults import crash_point

log = logging.getLogger(__name__)

COMPACT_COLUMNS = ("id", "source", "completion_tokens", "is_refusal", "task_type")
POS = "_pos"
# Staged files are scratch, written once and read back once: Arrow IPC. Per batch of 2,048 real
# conversations, uncompressed, it is written in ~4 ms and read in ~1 ms, where lz4 Parquet took
# ~18 ms and ~6 ms (Parquet encodes and compresses every page), for twice the bytes on disk.
# From LZ4_FROM_ROWS rows on (estimated), the bytes matter more (disk space, I/O, shared storage
# under Ray): lz4-compressed IPC, ~15 ms and ~3.5 ms, as small as lz4 Parquet.
STAGED_SUFFIX = ".arrow"
LZ4_FROM_ROWS = 20_000


def write_staged(table: pa.Table, path: Path, compression: str | None = None) -> None:
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)


def read_staged(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).read_all()


def staged_schema(path: Path) -> pa.Schema:
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).schema


def staged_rows(path: Path) -> int:
    with pa.memory_map(str(path), "r") as source:
        reader = pa.ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def internal(name: str) -> bool:
    return name.startswith("_")


class Staging:
    """A sink for the engines: ``add_kept`` / ``add_rejected`` per batch, in input order."""

    def __init__(
        self, root: Path, stage_names: list[str], num_perm: int | None = None, compression: str | None = None
    ):
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        self.root = root
        self.stage_names = list(stage_names)
        self.kept_files: list[tuple[Path, int, int]] = []  # (file, first position, rows)
        self.reject_files: dict[str, list[Path]] = {name: [] for name in stage_names}
        self._written: dict[Path, tuple[pa.Schema, int]] = {}  # schema and rows of each file written
        self.compression = compression  # of the staged files: None or "lz4"
        self.rows = 0
        self.compact: list[pa.Table] = []
        self.num_perm = num_perm
        self.sig_path = root / "signatures.u32"
        self._sig = open(self.sig_path, "wb") if num_perm else None  # noqa: SIM115 (closed in result)
        self._bands: list = []  # one file per LSH band: a band's keys for every row, contiguous
        self.n_bands = 0

    @property
    def batches(self) -> int:
        return len(self.kept_files)

    def add_kept(self, table: pa.Table) -> None:
        n = table.num_rows
        if self._sig is not None and SIGNATURE in table.column_names:
            self._sig.write(np.ascontiguousarray(list_matrix(table[SIGNATURE]), dtype=np.uint32).tobytes())
        if BANDS in table.column_names:
            keys = list_matrix(table[BANDS])
            if not self._bands:
                self._bands = [open(self.root / f"band-{j:03d}.u64", "wb") for j in range(keys.shape[1])]  # noqa: SIM115
                self.n_bands = keys.shape[1]
            for j, f in enumerate(self._bands):
                f.write(np.ascontiguousarray(keys[:, j], dtype=np.uint64).tobytes())
        on_disk = (SIGNATURE, BANDS)
        keep = [c for c in table.column_names if (c in COMPACT_COLUMNS or internal(c)) and c not in on_disk]
        compact = table.select(keep).append_column(POS, pa.array(np.arange(self.rows, self.rows + n)))
        # A copy: the batch's columns may be views into one buffer that also holds its texts (a
        # batch from a worker is a single IPC message); a view would keep all of it alive.
        compact = compact.take(pa.array(np.arange(n)))
        for name in ("source", "task_type"):  # a few distinct values: 4 bytes a row instead of ~15
            if name in compact.column_names:
                i = compact.column_names.index(name)
                compact = compact.set_column(i, name, pc.dictionary_encode(compact[name]))
        self.compact.append(compact)
        path = self.root / f"kept-{len(self.kept_files):06d}{STAGED_SUFFIX}"
        self._write(_public(table), path)
        self.kept_files.append((path, self.rows, n))
        self.rows += n
        if len(self.kept_files) % 50 == 0:
            log.info("staged %d batches, %d rows", len(self.kept_files), self.rows)
        crash_point(f"map:{len(self.kept_files)}")

    def add_rejected(self, stage: str, table: pa.Table) -> None:
        files = self.reject_files.setdefault(stage, [])
        path = self.root / f"rejects-{stage}-{len(files):06d}{STAGED_SUFFIX}"
        self._write(_public(table), path)
        files.append(path)

    def result(self) -> Staging:
        self.close_files()
        return self

    def band_keys(self, positions: np.ndarray):
        """Per LSH band, the keys of the rows at ``positions`` (one band in memory at a time)."""
        for j in range(self.n_bands):
            keys = np.fromfile(self.root / f"band-{j:03d}.u64", dtype=np.uint64)
            yield keys[positions]
            del keys

    def compact_table(self) -> pa.Table:
        table = pa.concat_tables(self.compact, promote_options="permissive")
        self.compact = []
        return table.unify_dictionaries().combine_chunks()  # one dictionary per column

    def signatures(self) -> np.ndarray:
        """Every staged row's signature, by position: a read-only memory map."""
        if not self.num_perm or self.rows == 0:
            return np.zeros((0, self.num_perm or 1), dtype=np.uint32)
        return np.memmap(self.sig_path, dtype=np.uint32, mode="r", shape=(self.rows, self.num_perm))

    def state(self) -> dict:
        """What ``restore`` needs (file names relative to the staging folder)."""
        return {
            "stage_names": self.stage_names,
            "kept_files": [[p.name, pos, n] for p, pos, n in self.kept_files],
            "reject_files": {k: [p.name for p in v] for k, v in self.reject_files.items()},
            "rows": self.rows,
            "num_perm": self.num_perm,
            "n_bands": self.n_bands,
            "compression": self.compression,
        }

    @classmethod
    def restore(cls, root: Path, state: dict) -> Staging:
        """The staging area of an interrupted run (its files must all be there)."""
        self = cls.__new__(cls)
        self.root = root
        self.stage_names = state["stage_names"]
        self.kept_files = [(root / name, pos, n) for name, pos, n in state["kept_files"]]
        self.reject_files = {k: [root / name for name in v] for k, v in state["reject_files"].items()}
        self._written = {}  # read from the files when needed
        self.compression = state.get("compression")
        self.rows, self.num_perm, self.n_bands = state["rows"], state["num_perm"], state["n_bands"]
        self.sig_path = root / "signatures.u32"
        self._sig, self._bands, self.compact = None, [], []
        needed = [p for p, _, _ in self.kept_files] + [p for v in self.reject_files.values() for p in v]
        needed += [root / f"band-{j:03d}.u64" for j in range(self.n_bands)]
        if self.num_perm:
            needed.append(self.sig_path)
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise ValueError(f"staged files missing: {missing[:3]}")
        return self

    def _write(self, table: pa.Table, path: Path) -> None:
        write_staged(table, path, self.compression)
        self._written[path] = (table.schema, table.num_rows)

    def schema_of(self, path: Path) -> pa.Schema:
        """A staged file's schema (known without reading it when this run wrote it)."""
        known = self._written.get(path)
        return known[0] if known else staged_schema(path)

    def rows_of(self, path: Path) -> int:
        known = self._written.get(path)
        return known[1] if known else staged_rows(path)

    def kept_schema(self) -> pa.Schema:
        return pa.unify_schemas(
            [self.schema_of(p) for p, _, _ in self.kept_files], promote_options="permissive"
        )

    def close_files(self) -> None:
        if self._sig is not None:
            self._sig.close()
            self._sig = None
        for f in self._bands:
            f.close()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _public(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in table.column_names if internal(c)])

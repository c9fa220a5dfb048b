"""Training data: a curation run (manifest, verified shards), a file or folder of conversations,
or a hub dataset; then train/validation splits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.errors import CurationError
from curation.run.verify import verify_run as check_run

log = logging.getLogger(__name__)


@dataclass
class RunData:
    run_dir: Path | None  # None when the data is not a curation run
    manifest: dict | None
    train: pa.Table
    validation: pa.Table
    validation_carved: bool  # True when the validation split was carved here (no validation shards)
    name: str = ""  # the run name, or the file's / dataset's name
    source: str = ""  # what --data named

    @property
    def is_run(self) -> bool:
        return self.manifest is not None

    @property
    def max_length(self) -> int | None:
        """The max_length the run's length stage kept rows for (None: not a run, or no length stage)."""
        tokenizer = (self.manifest or {}).get("tokenizer") or {}
        return tokenizer.get("max_length")

    @property
    def tokenizer_name(self) -> str | None:
        return ((self.manifest or {}).get("tokenizer") or {}).get("name")


def verify_run(run_dir: Path) -> dict:
    """The run's manifest, after ``curation.run.verify`` re-checked every shard's sha256 and row count
    and the accounting identity (as ``python -m pipelines.verify`` does)."""
    manifest, problems = check_run(run_dir)
    if problems:
        raise CurationError(f"{run_dir}: the curated run fails verification: " + "; ".join(problems))
    return manifest


def _read(run_dir: Path, manifest: dict, split: str) -> pa.Table | None:
    files = [run_dir / s["file"] for s in manifest["shards"] if s["split"] == split]
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def read_conversations(where: str | Path, name: str = "data", hub: bool = False) -> pa.Table:
    """Conversations from a file, folder or glob in any format the curation readers take (a
    Parquet or JSONL file in ``messages`` form, ShareGPT, Alpaca, ...), or from a hub dataset's
    train split; a bad row is an error that names its file, row and field."""
    from curation.config import SourceConfig
    from curation.io.reader import read_source

    source = SourceConfig(name="data", hub=str(where)) if hub else SourceConfig(name="data", path=str(where))
    read = read_source(source, None, strict=True)
    if read.records.num_rows == 0:
        raise CurationError(f"{where}: no conversations to {name}")
    return read.records


def read_validation_file(path: str | Path) -> pa.Table:
    return read_conversations(path, "evaluate on")


def looks_like_hub_id(text: str) -> bool:
    """'org/name' (or 'name'): what the hub accepts as a dataset id, and no local path."""
    import re

    if Path(text).expanduser().exists() or re.search(r"\.(jsonl|json|parquet|csv|tsv|gz|zst)$", text, re.I):
        return False  # a file name that is not there
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text) is not None


def load_data(
    data: str | Path,
    validation_fraction: float,
    max_validation_rows: int,
    seed: int,
    validation_data: str | Path | None = None,
) -> RunData:
    """What ``--data`` names: a curation run folder (with manifest.json), a file, folder or glob of
    conversations, or a hub dataset id."""
    where = Path(data).expanduser()
    if (where / "manifest.json").is_file():
        return load_run(where, validation_fraction, max_validation_rows, seed, validation_data)
    if where.is_dir() and any(where.glob("rejects-*-of-*.parquet")):
        raise CurationError(f"{where}: a curation run without its manifest.json (incomplete or altered)")
    if where.exists() or any(c in str(data) for c in "*?["):
        table, name = read_conversations(where, "train on"), where.stem
    elif looks_like_hub_id(str(data)):
        table, name = read_conversations(str(data), "train on", hub=True), str(data).replace("/", "--")
    else:
        raise CurationError(
            f"--data {data}: no such file or folder (a curation run, a Parquet/JSONL file or folder "
            "of conversations, or a hub dataset id)"
        )
    if validation_data is not None:
        validation, carved = read_validation_file(validation_data), False
    else:
        table, validation = carve_validation(table, validation_fraction, max_validation_rows, seed)
        carved = True
    return RunData(None, None, table, validation, carved, name=name, source=str(data))


def load_run(
    run_dir: str | Path,
    validation_fraction: float,
    max_validation_rows: int,
    seed: int,
    validation_data: str | Path | None = None,
) -> RunData:
    run_dir = Path(run_dir)
    manifest = verify_run(run_dir)
    train = _read(run_dir, manifest, "train")
    if train is None or train.num_rows == 0:
        raise CurationError(f"{run_dir}: the run kept no rows: nothing to train on")
    name = manifest.get("run_name", run_dir.name)
    if validation_data is not None:
        return RunData(
            run_dir, manifest, train, read_validation_file(validation_data), False, name, str(run_dir)
        )
    validation = _read(run_dir, manifest, "validation")
    carved = validation is None
    if carved:
        train, validation = carve_validation(train, validation_fraction, max_validation_rows, seed)
        log.info(
            "no validation shards in the run: carved %d seeded validation rows (by id hash)",
            validation.num_rows,
        )
    return RunData(run_dir, manifest, train, validation, carved, name, str(run_dir))


def carve_validation(table: pa.Table, fraction: float, max_rows: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """Seeded split by a hash of (seed, id): the same rows every time, whatever the row order."""
    import hashlib

    import numpy as np

    ids = table["id"].to_pylist()
    keys = np.array(
        [int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "big") for i in ids]
    )
    n_val = max(1, min(max_rows, int(round(len(ids) * fraction))))
    if len(ids) < 2:
        raise CurationError("need at least 2 curated rows to carve a validation split")
    order = np.argsort(keys, kind="stable")
    val_idx = np.sort(order[:n_val])
    mask = np.zeros(len(ids), dtype=bool)
    mask[val_idx] = True
    return table.filter(pa.array(~mask)), table.filter(pa.array(mask))

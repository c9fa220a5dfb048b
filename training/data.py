"""The curated run as training data: manifest, verified shards, train/validation splits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.errors import CurationError
from curation.verify import verify_run as check_run

log = logging.getLogger(__name__)


@dataclass
class RunData:
    run_dir: Path
    manifest: dict
    train: pa.Table
    validation: pa.Table
    validation_carved: bool  # True when the validation split was carved here (no validation shards)


def verify_run(run_dir: Path) -> dict:
    """The run's manifest, after ``curation.verify`` re-checked every shard's sha256 and row count
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


def read_validation_file(path: str | Path) -> pa.Table:
    """Conversations from a file in any format the curation readers take; bad rows are an error."""
    from curation.config import SourceConfig
    from curation.io.reader import read_source

    read = read_source(SourceConfig(name="validation", path=str(path)), None, strict=True)
    if read.records.num_rows == 0:
        raise CurationError(f"{path}: no conversations to evaluate on")
    return read.records


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
    if validation_data is not None:
        return RunData(run_dir, manifest, train, read_validation_file(validation_data), False)
    validation = _read(run_dir, manifest, "validation")
    carved = validation is None
    if carved:
        train, validation = carve_validation(train, validation_fraction, max_validation_rows, seed)
        log.warning(
            "no validation shards in the run: carved %d seeded validation rows (by id hash)",
            validation.num_rows,
        )
    return RunData(run_dir, manifest, train, validation, carved)


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

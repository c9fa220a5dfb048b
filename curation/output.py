"""Writing the run: Parquet shards (atomic), and the manifest, written last and atomically.

A shard is written to a hidden temporary name and renamed into place when complete, and the
manifest (which lists every shard with its sha256) is written after all shards: a crashed run
leaves no manifest, so nothing takes its output for complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from curation.errors import CurationError

MARKER = ".sft-curation-run"
OUTPUT_PREFIXES = ("train-", "validation-", "rejects-", "quarantine-", ".tmp-")
MANIFEST_VERSION = 1
STAGING_DIR = ".staging"  # map-stage output of a run in progress (removed at its end)


def prepare_out_dir(out: Path, overwrite: bool = False, keep_staging: bool = False) -> None:
    """Create the output folder, or clear a previous run of this tool in it.

    A non-empty folder that this tool did not create is never touched without ``overwrite``.
    """
    if out.exists() and not out.is_dir():
        raise CurationError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        ours = (out / MARKER).exists() or (out / "manifest.json").exists()
        if not ours and not overwrite:
            raise CurationError(f"{out}: folder is not empty and was not made by this tool; use --overwrite")
        for p in out.iterdir():
            if p.is_file() and (p.name.startswith(OUTPUT_PREFIXES) or p.name in ("manifest.json", MARKER)):
                p.unlink()
        if not keep_staging:
            shutil.rmtree(out / STAGING_DIR, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("created by sft-curation\n")


def write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

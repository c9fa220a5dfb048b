"""Writing the run: Parquet shards (atomic), and the manifest, written last and atomically.

A shard is written to a hidden temporary name and renamed into place when complete, and the
manifest (which lists every shard with its sha256) is written after all shards: a crashed run
leaves no manifest, so nothing takes its output for complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from curation.errors import CurationError

TOOL = "sft-curation"
MARKER = ".sft-curation-run"  # JSON: {"tool": "sft-curation", "run_id": ..., "run_name": ...}
LOCK = ".sft-curation.lock"  # held (flock) by the run writing the folder; holds its pid
OUTPUT_PREFIXES = ("train-", "validation-", "rejects-", "quarantine-", ".tmp-")
MANIFEST_VERSION = 1
STAGING_DIR = ".staging"  # map-stage output of a run in progress (removed at its end)


def is_ours(out: Path) -> bool:
    """Whether ``out`` was made by this tool: its marker, which nothing else writes, says so (a
    ``manifest.json`` alone is not enough: other tools write files of that name)."""
    try:
        text = (out / MARKER).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if text.startswith(f"created by {TOOL}"):  # the marker of runs before it held JSON
        return True
    try:
        return json.loads(text).get("tool") == TOOL
    except (ValueError, AttributeError):
        return False


def prepare_out_dir(
    out: Path, overwrite: bool = False, keep_staging: bool = False, run_name: str = ""
) -> None:
    """Create the output folder, or clear a previous run of this tool in it.

    A non-empty folder that this tool did not create is never touched without ``overwrite``, and
    even then nothing in it is deleted: only this tool's own files of a previous run are.
    """
    if out.exists() and not out.is_dir():
        raise CurationError(f"{out}: exists and is not a folder")
    if out.exists() and any(p.name != LOCK for p in out.iterdir()):
        ours = is_ours(out)
        if not ours and not overwrite:
            raise CurationError(f"{out}: folder is not empty and was not made by this tool; use --overwrite")
        if ours:
            for p in out.iterdir():
                if p.is_file() and (
                    p.name.startswith(OUTPUT_PREFIXES) or p.name in ("manifest.json", MARKER)
                ):
                    p.unlink()
            if not keep_staging:
                shutil.rmtree(out / STAGING_DIR, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    marker = {
        "tool": TOOL,
        "run_id": uuid.uuid4().hex,
        "run_name": run_name,
        "created_at": datetime.now(UTC).isoformat(),
    }
    write_json_atomic(out / MARKER, marker)


@contextlib.contextmanager
def folder_lock(out: Path):
    """Hold ``out``'s lock for a run: a second run into the same folder stops with a message
    naming the process that holds it, instead of both runs destroying each other's files."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise CurationError(
                f"{out}: folder is in use by process {holder} (another run is writing it)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock; the empty file stays (removing it would race a waiting run)


def readable_by_umask(path: str | Path) -> None:
    """mkstemp makes files 0600; output others read is made as open() would make it (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        readable_by_umask(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

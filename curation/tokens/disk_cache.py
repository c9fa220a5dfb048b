"""Small derived values pickled on disk under the cache folder (``SFT_CURATION_CACHE``, default
``~/.cache/sft-curation``): read when present and readable, written atomically, and never an
error: a missing, corrupt or read-only entry only costs recomputing the value."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def cache_root() -> Path:
    root = os.environ.get("SFT_CURATION_CACHE") or os.path.join(Path.home(), ".cache", "sft-curation")
    return Path(root)


def load(path: Path):
    """The value stored at ``path``, or None."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception:  # noqa: BLE001 - a missing or unreadable entry is recomputed
        return None


def store(path: Path, value) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache only costs the computation next time
        log.debug("could not write cache entry %s: %s", path, e)

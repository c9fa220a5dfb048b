"""Resuming an interrupted run: the map phase's finished work, checkpointed in the staging area.

When the map phase ends (reading, normalizing and every map stage: nearly all of a run's time),
the staging area holds every staged batch; ``save`` then writes the compact columns, the
quarantine and the counters next to them, and last, atomically, ``checkpoint.json`` with the
hashes of the config and of every input file. ``--resume`` uses the checkpoint only when both
hashes are unchanged (and the staged files are all there); otherwise the run starts clean. A
finished run records the same hashes in its manifest, so resuming a finished run does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pyarrow as pa

from curation.config import CurateConfig
from curation.io.files import expand_paths, sha256_file
from curation.io.reader import SourceRead
from curation.run.output import write_json_atomic
from curation.run.staging import STAGED_SUFFIX, Staging, read_staged, write_staged
from curation.stages.base import StageCounts

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.json"
# Settings that change how a run executes or what else it writes, never its shards.
NOT_IN_FINGERPRINT = {"out", "workers", "report", "diversity", "batch_size"}


def config_fingerprint(cfg: CurateConfig) -> str:
    data = cfg.model_dump(mode="json", exclude=NOT_IN_FINGERPRINT)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def input_fingerprint(cfg: CurateConfig, base_dir: Path | None, sources=None) -> dict[str, list[str]] | None:
    """sha256 of every input file per source (default: the sources and evaluation sets); None
    when one is a hub dataset (its content cannot be hashed before reading it)."""
    out: dict[str, list[str]] = {}
    for s in sources if sources is not None else [*cfg.sources, *cfg.stages.decontamination.eval_sets]:
        if s.hub is not None:
            return None
        out[s.name] = [sha256_file(p) for p in expand_paths(s.path, base_dir)]
    return out


def save(
    staging: Staging,
    compact: pa.Table,
    counts: StageCounts,
    reads: list[SourceRead],
    quarantine: pa.Table,
    fingerprint: dict,
):
    root = staging.root
    write_staged(compact, root / f"compact{STAGED_SUFFIX}", staging.compression)
    write_staged(quarantine, root / f"quarantine{STAGED_SUFFIX}", staging.compression)
    state = {
        **fingerprint,
        "staging": staging.state(),
        "counts": counts.state(),
        "reads": [
            {"name": r.name, "raw_rows": r.raw_rows, "expanded": r.expanded, "inputs": r.inputs}
            for r in reads
        ],
    }
    write_json_atomic(root / CHECKPOINT, state)


def load(root: Path, fingerprint: dict):
    """(staging, compact columns, counts, reads, quarantine) from a checkpoint with this
    fingerprint, else None."""
    path = root / CHECKPOINT
    if not path.is_file():
        log.info("resume: no checkpoint in %s: starting clean", root)
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if any(state.get(k) != v for k, v in fingerprint.items()):
            log.warning("resume: the config or the inputs changed since the interrupted run: starting clean")
            return None
        staging = Staging.restore(root, state["staging"])
        compact = read_staged(root / f"compact{STAGED_SUFFIX}").unify_dictionaries().combine_chunks()
        quarantine = read_staged(root / f"quarantine{STAGED_SUFFIX}")
    except (OSError, ValueError, KeyError) as e:
        log.warning("resume: the checkpoint in %s is unusable (%s): starting clean", root, e)
        return None
    counts = StageCounts.from_state(state["counts"])
    reads = [
        SourceRead(r["name"], pa.table({}), pa.table({}), r["raw_rows"], r["expanded"], r["inputs"])
        for r in state["reads"]
    ]
    log.info("resume: reusing the map phase of the interrupted run (%d staged rows)", staging.rows)
    return staging, compact, counts, reads, quarantine

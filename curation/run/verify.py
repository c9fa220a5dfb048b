"""Re-check a finished run against its manifest: shards, row counts, and the accounting identity.

``verify_run(run_dir)`` returns the manifest and a list of problems (empty when the run is
sound). It checks that the manifest exists (written last: a run without one was interrupted),
that every shard it lists exists with the same sha256 and row count, that no stray output files
(temporary, unlisted shards) lie beside them, that the shards hold the totals the manifest
states, and, per source, that input = kept + rejected + quarantined, both in the manifest's
counts and in the rows actually in the shards.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.io.files import sha256_file
from curation.run.output import LOCK, MANIFEST_VERSION, MARKER, OUTPUT_PREFIXES, STAGING_DIR


def _source_counts(files: list[Path], only_first_copy: bool = False) -> Counter:
    counts: Counter = Counter()
    for f in files:
        columns = ["source", "mix_copy"] if only_first_copy else ["source"]
        table = pq.read_table(f, columns=columns)
        if only_first_copy:
            table = table.filter(pc.equal(table["mix_copy"], 0))
        if table.num_rows:
            vc = pc.value_counts(table["source"])
            counts.update(
                dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))
            )
    return counts


OWN_FILES = {"manifest.json", MARKER, LOCK, STAGING_DIR}


def _shape_problem(manifest) -> str | None:
    """What makes ``manifest`` not a manifest at all (None when its shape is right)."""
    if not isinstance(manifest, dict):
        return f"not a manifest: a JSON {type(manifest).__name__}, expected an object"
    shards = manifest.get("shards", [])
    if not isinstance(shards, list) or not all(
        isinstance(x, dict)
        and isinstance(x.get("file"), str)
        and isinstance(x.get("sha256"), str)
        and isinstance(x.get("rows"), int)
        and isinstance(x.get("split"), str)
        for x in shards
    ):
        return "'shards' must be a list of {file, sha256, rows, split}"
    counts = manifest.get("counts", {})
    if not isinstance(counts, dict) or not all(
        isinstance(c, dict)
        and all(isinstance(c.get(k), int) for k in ("input", "kept", "rejected", "quarantined"))
        for c in counts.values()
    ):
        return "'counts' must map each source to its input/kept/rejected/quarantined numbers"
    if not isinstance(manifest.get("totals", {}), dict):
        return "'totals' must be an object"
    return None


def verify_run(run_dir: str | Path) -> tuple[dict | None, list[str]]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None, [f"{run_dir}: no such run folder"]
    path = run_dir / "manifest.json"
    if not path.is_file():
        return None, [
            f"{run_dir}: no manifest.json: the curation run is incomplete (interrupted?) or not a run folder"
        ]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return None, [f"{path}: not valid JSON ({e})"]
    shape = _shape_problem(manifest)
    if shape:
        return None, [f"{path}: {shape}"]
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        return manifest, [
            f"{path}: manifest version {manifest.get('manifest_version')!r}, expected {MANIFEST_VERSION}"
        ]
    problems: list[str] = []
    shards = manifest.get("shards", [])
    by_split: dict[str, list[Path]] = {}
    rows_by_split: Counter = Counter()
    root = run_dir.resolve()
    for shard in shards:
        f = run_dir / shard["file"]
        if f.resolve().parent != root:  # a manifest names files of its own folder, nothing else
            problems.append(f"shard {shard['file']!r}: not a file of the run folder (refused)")
            continue
        if not f.is_file():
            problems.append(f"shard {shard['file']} listed in the manifest is missing")
            continue
        if sha256_file(f) != shard["sha256"]:
            problems.append(f"shard {shard['file']} was altered: its sha256 differs from the manifest")
            continue
        try:
            rows = pq.read_metadata(f).num_rows
        except Exception as e:  # noqa: BLE001 (pyarrow raises several types for a corrupt file)
            problems.append(f"shard {shard['file']} is not readable Parquet: {e}")
            continue
        if rows != shard["rows"]:
            problems.append(f"shard {shard['file']} has {rows} rows, the manifest says {shard['rows']}")
        by_split.setdefault(shard["split"], []).append(f)
        rows_by_split[shard["split"]] += rows
    listed = {s["file"] for s in shards}
    for f in sorted(run_dir.iterdir()):
        if f.name in listed or f.name in OWN_FILES:
            continue
        if f.name.startswith(OUTPUT_PREFIXES):
            problems.append(f"{f.name}: an output file the manifest does not list (left by another run?)")
        else:
            problems.append(f"{f.name}: a file this tool did not write (not part of the run)")
    if problems:
        return manifest, problems

    totals = manifest.get("totals", {})
    for split, key in (
        ("train", "train_rows"),
        ("validation", "validation_rows"),
        ("rejects", "rejected"),
        ("quarantine", "quarantined"),
    ):
        if key in totals and rows_by_split[split] != totals[key]:
            problems.append(
                f"{split} shards hold {rows_by_split[split]} rows, the manifest totals say {totals[key]}"
            )
    counts = manifest.get("counts", {})
    for key in ("input", "kept", "rejected", "quarantined"):
        if key in totals and totals[key] != sum(c.get(key, 0) for c in counts.values()):
            problems.append(
                f"the manifest's total {key} is {totals[key]}, its sources add up to "
                f"{sum(c.get(key, 0) for c in counts.values())}"
            )
    kept = _source_counts(by_split.get("train", []), only_first_copy=True) + _source_counts(
        by_split.get("validation", [])
    )
    rejected = _source_counts(by_split.get("rejects", []))
    quarantined = _source_counts(by_split.get("quarantine", []))
    for source, c in manifest.get("counts", {}).items():
        if c["input"] != c["kept"] + c["rejected"] + c["quarantined"]:
            problems.append(
                f"source {source!r}: input {c['input']} != kept {c['kept']} + rejected {c['rejected']} "
                f"+ quarantined {c['quarantined']} (manifest counts)"
            )
        found = (kept[source], rejected[source], quarantined[source])
        if found != (c["kept"], c["rejected"], c["quarantined"]):
            problems.append(
                f"source {source!r}: the shards hold kept/rejected/quarantined {found}, "
                f"the manifest says {(c['kept'], c['rejected'], c['quarantined'])}"
            )
    unknown = (set(kept) | set(rejected) | set(quarantined)) - set(manifest.get("counts", {}))
    if unknown:
        problems.append(f"rows of sources the manifest does not count: {sorted(unknown)}")
    return manifest, problems

"""The report's numbers, computed from a run's output folder (shards + rejects + manifest).

Everything comes from columns the stages already wrote (data-juicer's idea: the analyser reuses
the filters' statistics), so a report costs one read of the shards, and it can be rebuilt later
with ``python -m pipelines.report <run dir>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.dedup.keys import key_texts
from curation.diversity.metrics import metrics_by_source
from curation.diversity.task_types import load_rules
from curation.errors import CurationError

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 400
TOP_PROMPTS = 10


def read_split(run_dir: Path, prefix: str) -> pa.Table | None:
    files = sorted(run_dir.glob(f"{prefix}-*-of-*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def load_run(run_dir: str | Path) -> tuple[dict, pa.Table, pa.Table | None, pa.Table]:
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise CurationError(f"{run_dir} is not a curated run folder: no manifest.json")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    train = read_split(run_dir, "train")
    if train is None:
        raise CurationError(f"{run_dir}: no train-*.parquet shards")
    return manifest, train, read_split(run_dir, "validation"), read_split(run_dir, "rejects")


def funnel(manifest: dict) -> dict:
    """Per source: rows remaining after reading, quarantine, and each stage in order."""
    out = {}
    order = list(manifest["stages"])
    for source, c in manifest["counts"].items():
        steps = [("read", c["input"]), ("valid rows", c["input"] - c["quarantined"])]
        left = c["input"] - c["quarantined"]
        for stage in order:
            left -= c["removed"].get(stage, 0)
            steps.append((stage, left))
        out[source] = steps
    return out


def _text(messages, role: str) -> str:
    for m in messages or []:
        if m["role"] == role:
            return m["content"]
    return ""


def reject_examples(rejects: pa.Table | None) -> dict:
    """Up to EXAMPLES_PER_REASON rows per reject reason, prompt and answer shortened."""
    if rejects is None or rejects.num_rows == 0:
        return {}
    df = pl.from_arrow(rejects.select(["reject_stage", "reject_reason", "source", "id"]))
    df = df.with_row_index("row").with_columns(
        reason=pl.col("reject_reason").str.replace(r"^(contaminated:[^:]+):.*$", "$1")
    )
    picked = df.group_by("reason", maintain_order=True).head(EXAMPLES_PER_REASON)
    rows = rejects.take(pa.array(picked["row"].to_numpy()))["messages"].to_pylist()
    out: dict = {}
    for rec, messages in zip(picked.iter_rows(named=True), rows, strict=True):
        out.setdefault(rec["reason"], []).append(
            {
                "stage": rec["reject_stage"],
                "source": rec["source"],
                "id": rec["id"],
                "detail": rec["reject_reason"],
                "prompt": _text(messages, "user")[:EXAMPLE_CHARS],
                "response": _text(messages, "assistant")[:EXAMPLE_CHARS],
            }
        )
    return out


def reasons_by_source(rejects: pa.Table | None) -> dict:
    if rejects is None or rejects.num_rows == 0:
        return {}
    df = pl.from_arrow(rejects.select(["source", "reject_stage", "reject_reason"])).with_columns(
        reason=pl.col("reject_reason").str.replace(r"^(contaminated:[^:]+):.*$", "$1")
    )
    counts = df.group_by(["source", "reason"]).len().sort(["source", "len"], descending=[False, True])
    out: dict = {}
    for source, reason, n in counts.iter_rows():
        out.setdefault(source, {})[reason] = n
    return out


def prompt_repetition(table: pa.Table) -> dict:
    """How often first prompts repeat (normalized as the dedup keys are): decides whether
    prompt-level dedup (``stages.exact_dedup.key: prompt``) is worth it."""
    if table.num_rows == 0:
        return {"rows": 0}
    keys = key_texts(table, "prompt", lowercase=True)
    vc = pl.DataFrame({"k": keys}).group_by("k").len().sort(["len", "k"], descending=[True, False])
    repeated = vc.filter(pl.col("len") > 1)
    return {
        "rows": table.num_rows,
        "distinct_prompts": vc.height,
        "rows_with_repeated_prompt": int(repeated["len"].sum()) if repeated.height else 0,
        "share_with_repeated_prompt": float(repeated["len"].sum() / table.num_rows)
        if repeated.height
        else 0.0,
        "top": [{"prompt": k[:200], "rows": n} for k, n in repeated.head(TOP_PROMPTS).iter_rows()],
    }


def cluster_sizes(kept: pa.Table, rejects: pa.Table | None) -> dict:
    """Size of every dedup cluster (survivor + removed members) -> number of clusters."""
    parts = [kept.select(["dup_cluster"])] if "dup_cluster" in kept.column_names else []
    if rejects is not None and "dup_cluster" in rejects.column_names:
        parts.append(rejects.select(["dup_cluster"]))
    if not parts:
        return {}
    col = pa.concat_tables(parts)["dup_cluster"]
    col = pc.drop_null(col)
    if len(col) == 0:
        return {}
    sizes = pl.Series("c", col.to_pylist()).value_counts()["count"].alias("size")
    hist = sizes.value_counts(name="clusters").sort("size")
    return {int(k): int(v) for k, v in hist.iter_rows()}


def semantic(manifest: dict, tables: dict[str, pa.Table]) -> dict:
    """Semantic diversity of the first prompts of each table (one model load for all)."""
    from curation.diversity.semantic import Embedder, semantic_diversity, unavailable_reason

    cfg = manifest.get("config", {}).get("diversity") or {}
    if not cfg.get("semantic", True):
        return {name: {"skipped": "semantic diversity is off (diversity.semantic: false)"} for name in tables}
    reason = unavailable_reason()
    if reason:
        return {name: {"skipped": reason} for name in tables}
    embedder = Embedder()
    return {
        name: semantic_diversity(
            key_texts(table, "prompt", lowercase=True).to_list(),
            k=cfg.get("semantic_clusters", 20),
            max_rows=cfg.get("semantic_max_rows", 2000),
            seed=manifest.get("seed", 0),
            embedder=embedder,
        )
        for name, table in tables.items()
    }


def report_data(run_dir: str | Path, loaded: tuple | None = None) -> dict:
    """The report's numbers; ``loaded`` is ``load_run(run_dir)`` when the caller has it already."""
    manifest, train, validation, rejects = loaded or load_run(run_dir)
    rules_path = (manifest.get("config", {}).get("stages", {}).get("task_type") or {}).get("rules")
    try:
        types = load_rules(rules_path).types
    except CurationError:
        types = None
    first = train.filter(pc.equal(train["mix_copy"], 0)) if "mix_copy" in train.column_names else train
    kept_parts = [first.drop_columns(["mix_copy"]) if "mix_copy" in first.column_names else first]
    if validation is not None:
        kept_parts.append(validation)
    kept = pa.concat_tables(kept_parts, promote_options="default")
    everything = pa.concat_tables(
        [kept]
        + (
            [
                rejects.drop_columns(
                    [
                        c
                        for c in ("reject_stage", "reject_reason", "duplicate_of")
                        if c in rejects.column_names
                    ]
                )
            ]
            if rejects is not None
            else []
        ),
        promote_options="default",
    )
    sem = semantic(manifest, {"before": everything, "after": train})
    return {
        "run_name": manifest["run_name"],
        "created_at": manifest.get("created_at"),
        "out": str(Path(run_dir).resolve()),
        "totals": manifest["totals"],
        "funnel": funnel(manifest),
        "rejects_by_reason": reasons_by_source(rejects),
        "reject_examples": reject_examples(rejects),
        "task_types": list(types) if types else None,
        "diversity": {
            "before": metrics_by_source(everything, types),  # every row read, before any filter
            "after": metrics_by_source(train, types),  # the training set as mixed (repeats included)
            "semantic": sem,  # first prompts: MiniLM embeddings, k-means cluster entropy
        },
        "prompt_repetition": prompt_repetition(everything),
        "dup_cluster_sizes": cluster_sizes(kept, rejects),
        "mix": manifest.get("mix"),
        "warnings": manifest.get("warnings", []),
        "validation_rows": 0 if validation is None else validation.num_rows,
        "seconds": manifest.get("timings_s", {}),
    }


def json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj

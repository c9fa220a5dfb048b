"""Precision and recall of the default filters against the labelled real rows.

The labelled rows (``labels.jsonl``: file, row, id, labels, content type) are read from
``../shared/data`` with the project's reader, written to a temporary folder and curated by the
default pipeline (``run_curation`` with the default config). Then:

* per stage and reject reason: rows removed and the share of them that carry the reason's label
  (precision); a language reject is right when the answer is in a wrong language or the user
  writes in a language the config does not keep;
* per label: the share of its rows that the matching stage flags on its own (recall; each stage
  is also run alone on every row, so a row removed earlier for another defect still counts for
  the stage that would have caught it), and the share the pipeline removes for any reason;
* the refusal tag (``is_refusal``) against the ``refusal`` label;
* false rejects: clean rows removed by a filter (duplicates of another labelled row are not
  counted), overall and per content type.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from bench.quality.sources import SHARED_DATA, read_file, source_name

LABELS_FILE = Path(__file__).with_name("labels.jsonl")
DEFECTS = ("truncated", "looping", "wrong_language", "template_leak", "empty")
CONTENT_TYPES = (
    "prose",
    "list",
    "table",
    "unfenced_code",
    "fenced_code",
    "math_steps",
    "latex",
    "verse",
    "translation",
    "emoji",
    "short",
)
# The label a reject reason claims, by stage; stages not here (length budget, dedup) claim none.
STAGE_LABEL = {
    "empty": "empty",
    "truncation": "truncated",
    "repetition": "looping",
    "language": "wrong_language",
    "template_leak": "template_leak",
    "refusal": "refusal",
}
DEDUP_STAGES = ("exact_dedup", "near_dedup")


def load_labels(path: Path = LABELS_FILE) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Outcome:
    """What the pipeline did with each labelled row, and what each stage alone says of it."""

    labels: dict[str, dict]  # key -> label record
    removed: dict[str, tuple[str, str]]  # key -> (stage, reason) for removed rows
    refusal_tag: dict[str, bool]  # key -> is_refusal as the refusal stage tagged it
    alone: dict[str, dict[str, str | None]] = field(default_factory=dict)  # stage -> key -> reason


def key_of(rec: dict) -> str:
    return f"{rec['file']}#{rec['row']}"


def _labelled_rows(labels: list[dict], root: Path) -> dict[str, list[tuple[str, list]]]:
    """Per file: (key, messages) of each labelled row, checked against the stored id."""
    by_file: dict[str, list[tuple[str, list]]] = defaultdict(list)
    for rec in labels:
        table = read_file(rec["file"], root)
        if table["id"][rec["row"]].as_py() != rec["id"]:
            raise SystemExit(
                f"{rec['file']} row {rec['row']}: the conversation changed (id differs from the label's)"
            )
        by_file[rec["file"]].append((key_of(rec), table["messages"][rec["row"]].as_py()))
    return by_file


def run(labels: list[dict] | None = None, root: Path = SHARED_DATA, workers: int = 1) -> Outcome:
    from curation.config import CurateConfig, StagesConfig
    from curation.run.pipeline import run_curation
    from curation.stages import build_map_stages

    labels = labels if labels is not None else load_labels()
    by_file = _labelled_rows(labels, root)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        sources = []
        for file, rows in by_file.items():
            path = Path(tmp) / f"{source_name(file)}.jsonl"
            with path.open("w") as fh:
                for key, messages in rows:
                    fh.write(json.dumps({"messages": messages, "label_key": key}) + "\n")
            sources.append({"name": source_name(file), "path": str(path), "format": "openai"})
        cfg = CurateConfig(run_name="bench-quality", sources=sources, report=False, workers=workers)
        result = run_curation(cfg, out=Path(tmp) / "out")
        removed, tag = {}, {}
        for table in (result.kept, result.rejected):
            if table is None or table.num_rows == 0:
                continue
            keys = [json.loads(m)["label_key"] for m in table["meta"].to_pylist()]
            refusal = (
                table["is_refusal"].to_pylist() if "is_refusal" in table.column_names else [None] * len(keys)
            )
            for k, r in zip(keys, refusal, strict=True):
                tag[k] = bool(r)
            if "reject_stage" in table.column_names:
                for k, s, r in zip(
                    keys, table["reject_stage"].to_pylist(), table["reject_reason"].to_pylist(), strict=True
                ):
                    removed[k] = (s, r)
        quarantined = result.quarantine
        if quarantined is not None and quarantined.num_rows:
            raise SystemExit(
                f"{quarantined.num_rows} labelled rows were quarantined: {quarantined['reason'].to_pylist()[:3]}"
            )

    # Each stage alone on every labelled row (the length budget and dedup are not quality labels).
    keys = [k for rows in by_file.values() for k, _ in rows]
    table = pa.table(
        {
            "id": keys,
            "source": ["q"] * len(keys),
            "messages": [m for rows in by_file.values() for _, m in rows],
        }
    )
    stages_cfg = StagesConfig()
    stages_cfg.length.enabled = False
    alone = {}
    for stage in build_map_stages(stages_cfg):
        annotated = stage.annotate(table)
        decided = stage.decide(annotated)
        decided = decided.to_pylist() if hasattr(decided, "to_pylist") else list(decided)
        alone[stage.name] = dict(zip(keys, decided, strict=True))
        if stage.name == "refusal":
            alone["refusal_tag"] = dict(zip(keys, annotated["is_refusal"].to_pylist(), strict=True))
    return Outcome({key_of(r): r for r in labels}, removed, tag, alone)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def reject_is_right(stage: str, rec: dict, keep_languages=("en",)) -> bool | None:
    """Whether a reject by ``stage`` is right for this row (None: the stage claims no label)."""
    label = STAGE_LABEL.get(stage)
    if label is None:
        return None
    if label == "wrong_language" and rec.get("lang") not in keep_languages:
        return True
    return label in rec["labels"]


def metrics(o: Outcome) -> dict:
    """Every number the benchmark reports, as plain data."""
    reasons: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for key, (stage, reason) in o.removed.items():
        right = reject_is_right(stage, o.labels[key])
        if right is None:
            continue
        family = reason.split(":")[0] if stage != "repetition" else reason
        reasons[(stage, family)][0] += 1
        reasons[(stage, family)][1] += int(right)
    per_reason = [
        {"stage": s, "reason": r, "removed": n, "right": ok, "precision": _ratio(ok, n)}
        for (s, r), (n, ok) in sorted(reasons.items())
    ]
    per_stage = defaultdict(lambda: [0, 0])
    for (s, _), (n, ok) in reasons.items():
        per_stage[s][0] += n
        per_stage[s][1] += ok
    recall = []
    for stage, label in STAGE_LABEL.items():
        if label == "refusal":
            continue
        positives = [k for k, rec in o.labels.items() if label in rec["labels"]]
        flagged = o.alone.get(stage, {})
        caught = sum(flagged.get(k) is not None for k in positives)
        removed = sum(k in o.removed for k in positives)
        recall.append(
            {
                "label": label,
                "stage": stage,
                "rows": len(positives),
                "flagged_by_stage": caught,
                "recall": _ratio(caught, len(positives)),
                "removed_by_pipeline": _ratio(removed, len(positives)),
                "precision": _ratio(per_stage[stage][1], per_stage[stage][0]),
            }
        )
    tag = o.alone.get("refusal_tag", {})
    pos = {k for k, rec in o.labels.items() if "refusal" in rec["labels"]}
    tagged = {k for k, v in tag.items() if v}
    refusal = {
        "rows": len(pos),
        "tagged": len(tagged),
        "precision": _ratio(len(pos & tagged), len(tagged)),
        "recall": _ratio(len(pos & tagged), len(pos)),
    }
    clean = {k: rec for k, rec in o.labels.items() if "clean" in rec["labels"]}
    false = {k for k in clean if k in o.removed and o.removed[k][0] not in DEDUP_STAGES}
    by_type = []
    for ct in CONTENT_TYPES:
        rows = [k for k, rec in clean.items() if rec["content_type"] == ct]
        bad = [k for k in rows if k in false]
        by_type.append(
            {
                "content_type": ct,
                "clean_rows": len(rows),
                "false_rejects": len(bad),
                "rate": _ratio(len(bad), len(rows)),
            }
        )
    wrongly = Counter(
        o.removed[k][1].split(":")[0] if o.removed[k][0] != "repetition" else o.removed[k][1] for k in false
    )
    return {
        "rows": len(o.labels),
        "files": len({rec["file"] for rec in o.labels.values()}),
        "label_counts": dict(Counter(lab for rec in o.labels.values() for lab in rec["labels"])),
        "per_reason": per_reason,
        "recall": recall,
        "refusal_tag": refusal,
        "clean_rows": len(clean),
        "false_rejects": len(false),
        "false_reject_rate": _ratio(len(false), len(clean)),
        "false_rejects_by_reason": dict(wrongly),
        "false_rejects_by_content_type": by_type,
        "duplicates_removed": sum(s in DEDUP_STAGES for s, _ in o.removed.values()),
    }


# The floors (#21), asserted by tests/test_quality.py.
FLOORS = {
    "reject_precision": 0.95,
    "recall": {"truncated": 0.90, "looping": 0.90, "template_leak": 0.90, "empty": 0.90},
    "refusal_tag": 0.90,
    "false_reject_rate": 0.01,
    "false_reject_rate_per_type": 0.02,
}


def misses(m: dict) -> list[str]:
    """The floors this result does not reach, as sentences (empty when it reaches every one)."""
    out = []
    for r in m["per_reason"]:
        if r["precision"] is not None and r["precision"] < FLOORS["reject_precision"]:
            out.append(
                f"{r['stage']} {r['reason']}: precision {r['precision']:.3f} < {FLOORS['reject_precision']}"
            )
    for r in m["recall"]:
        floor = FLOORS["recall"].get(r["label"])
        if floor is not None and (r["recall"] or 0) < floor:
            out.append(f"{r['label']}: recall {r['recall']} < {floor}")
    for k in ("precision", "recall"):
        v = m["refusal_tag"][k]
        if v is None or v < FLOORS["refusal_tag"]:
            out.append(f"refusal tag {k} {v} < {FLOORS['refusal_tag']}")
    if m["false_reject_rate"] > FLOORS["false_reject_rate"]:
        out.append(
            f"false rejects of clean rows {m['false_reject_rate']:.4f} > {FLOORS['false_reject_rate']}"
        )
    for r in m["false_rejects_by_content_type"]:
        if r["rate"] is not None and r["rate"] > FLOORS["false_reject_rate_per_type"]:
            out.append(
                f"false rejects of clean {r['content_type']} rows {r['rate']:.3f} > {FLOORS['false_reject_rate_per_type']}"
            )
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown(m: dict) -> str:
    lines = [
        f"{m['rows']} labelled rows from {m['files']} files; labels: "
        + ", ".join(f"{k} {v}" for k, v in sorted(m["label_counts"].items())),
        "",
        "| stage | reject reason | removed | right | precision |",
        "|---|---|---:|---:|---:|",
        *(
            f"| {r['stage']} | {r['reason']} | {r['removed']} | {r['right']} | {_pct(r['precision'])} |"
            for r in m["per_reason"]
        ),
        "",
        "| label | stage | labelled rows | flagged by the stage | recall | stage precision | removed by the pipeline |",
        "|---|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r['label']} | {r['stage']} | {r['rows']} | {r['flagged_by_stage']} | {_pct(r['recall'])} | "
            f"{_pct(r['precision'])} | {_pct(r['removed_by_pipeline'])} |"
            for r in m["recall"]
        ),
        f"| refusal (tag) | refusal | {m['refusal_tag']['rows']} | {m['refusal_tag']['tagged']} | "
        f"{_pct(m['refusal_tag']['recall'])} | {_pct(m['refusal_tag']['precision'])} | (tag only) |",
        "",
        f"False rejects of clean rows: {m['false_rejects']} of {m['clean_rows']} ({_pct(m['false_reject_rate'])})"
        + (f"; by reason: {m['false_rejects_by_reason']}" if m["false_rejects"] else "")
        + f". Duplicates removed among the labelled rows (not counted): {m['duplicates_removed']}.",
        "",
        "| content type | clean rows | false rejects | rate |",
        "|---|---:|---:|---:|",
        *(
            f"| {r['content_type']} | {r['clean_rows']} | {r['false_rejects']} | {_pct(r['rate'])} |"
            for r in m["false_rejects_by_content_type"]
        ),
    ]
    return "\n".join(lines) + "\n"

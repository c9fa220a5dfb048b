"""Write reports/<run>/: report.json, the PNG plots, and index.html with the plots embedded
(data URIs: the page opens from disk, with no network and no script)."""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from curation.report import plots
from curation.report.data import json_safe, load_run, report_data

log = logging.getLogger(__name__)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.muted{color:#666} table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right;vertical-align:top} th{background:#f5f5f5}
td.l,th.l{text-align:left} img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{background:#f7f9fc;border:1px solid #e3e8f0;border-radius:8px;padding:.7rem 1rem;min-width:140px}
.card b{display:block;font-size:1.5rem} .warn{background:#fff4e5;border:1px solid #f0c36d;padding:.5rem .8rem;border-radius:6px}
.ex{font-family:ui-monospace,monospace;font-size:.8rem;white-space:pre-wrap;text-align:left;max-width:420px}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(x, digits: int = 0) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and digits:
        return f"{x:,.{digits}f}"
    return f"{x:,.0f}" if isinstance(x, int | float) else _e(x)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _img(out: Path, name: str | None, alt: str) -> str:
    if not name:
        return f'<p class="muted">No data for “{_e(alt)}”.</p>'
    data = base64.b64encode((out / name).read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _diversity_rows(d: dict) -> list[list[str]]:
    rows = []
    for scope in ["all", *sorted(d["before"]["by_source"])]:
        b = d["before"]["all"] if scope == "all" else d["before"]["by_source"].get(scope, {})
        a = d["after"]["all"] if scope == "all" else d["after"]["by_source"].get(scope, {})
        for label, m in (("before", b), ("after", a)):
            ent = m.get("task_type_entropy", {})
            rows.append(
                [
                    _e(scope if label == "before" else ""),
                    label,
                    _num(m.get("rows")),
                    _num(ent.get("bits"), 2),
                    _num(ent.get("normalized"), 2),
                    _num(m.get("distinct_1"), 3),
                    _num(m.get("distinct_2"), 3),
                    _num(m.get("prompt_tokens", {}).get("p50")),
                    _num(m.get("completion_tokens", {}).get("mean"), 1),
                    _num(m.get("completion_tokens", {}).get("p90")),
                    _num(m.get("completion_tokens", {}).get("p99")),
                    _pct(m.get("languages", {}).get("en")),
                    _pct(m.get("refusal_share")),
                    _num(m.get("turns", {}).get("mean"), 2),
                ]
            )
    return rows


def _semantic_html(sem: dict) -> str:
    skipped = {s.get("skipped") for s in sem.values() if s.get("skipped")}
    if not sem or skipped and len(skipped) == len(sem):
        return f'<p class="muted">{_e(next(iter(skipped), "semantic diversity not computed"))}</p>'
    rows = [
        [
            _e(name),
            _num(s.get("rows")),
            _num(s.get("clusters")),
            _num(s.get("cluster_entropy_bits"), 2),
            _num(s.get("cluster_entropy_normalized"), 2),
            _num(s.get("mean_cosine_distance"), 3),
        ]  # fmt: skip
        for name, s in sem.items()
        if not s.get("skipped")
    ]
    return (
        "<p>Semantic diversity of the first prompts (all-MiniLM-L6-v2 embeddings, k-means; a seeded "
        "sample when large): the more evenly prompts spread over clusters, the higher the entropy.</p>"
        + _table(
            ["set", "prompts", "clusters", "cluster entropy (bits)", "normalized", "mean cosine distance"],
            rows,
        )
    )


def render_html(data: dict, images: dict[str, str | None], out: Path) -> str:
    t = data["totals"]
    cards = "".join(
        f'<div class="card"><span class="muted">{_e(k)}</span><b>{_num(v)}</b></div>'
        for k, v in (
            ("rows read", t["input"]),
            ("kept", t["kept"]),
            ("removed", t["rejected"]),
            ("quarantined", t["quarantined"]),
            ("training rows", t.get("train_rows", t["kept"])),
            ("validation rows", t.get("validation_rows", 0)),
        )
    )
    stages = [s for s, _ in next(iter(data["funnel"].values()), [])]
    funnel_rows = [[_e(src)] + [_num(n) for _, n in steps] for src, steps in sorted(data["funnel"].items())]
    d = data["diversity"]
    div_header = ["scope", "", "rows", "task entropy (bits)", "normalized", "distinct-1", "distinct-2",
                  "prompt tok p50", "answer tok mean", "p90", "p99", "English", "refusals", "turns"]  # fmt: skip
    ex_rows = []
    for reason, examples in sorted(data["reject_examples"].items()):
        for i, ex in enumerate(examples):
            ex_rows.append(
                [
                    _e(reason) if i == 0 else "",
                    _e(ex["source"]),
                    f'<div class="ex">{_e(ex["prompt"])}</div>',
                    f'<div class="ex">{_e(ex["response"])}</div>',
                    _e(ex["detail"]) if ex["detail"] != reason else "",
                ]
            )
    pr = data["prompt_repetition"]
    top = [[f'<div class="ex">{_e(p["prompt"])}</div>', _num(p["rows"])] for p in pr.get("top", [])]
    mix = data.get("mix") or {}
    mix_rows = [
        [
            _e(g),
            _num(v["available"]),
            _pct(v["target_share"]),
            _num(v["realized"]),
            _pct(v["realized_share"]),
            _num(v["upsample"], 2),
        ]  # fmt: skip
        for g, v in (mix.get("groups") or {}).items()
    ]
    warnings = "".join(
        f'<p class="warn">{_e(w)}</p>' for w in [*data.get("warnings", []), *mix.get("warnings", [])]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Curation report: {_e(data["run_name"])}</title>
<style>{CSS}</style></head><body>
<h1>Curation report: {_e(data["run_name"])}</h1>
<p class="muted">{_e(data.get("created_at") or "")} · {_e(data["out"])}</p>
<div class="cards">{cards}</div>

<h2>Funnel</h2>
{_img(out, images.get("funnel"), "funnel")}
{_table(["source", *stages], funnel_rows)}

<h2>Why rows were removed</h2>
{_img(out, images.get("rejects"), "rejects by reason")}
<p>A few removed rows for each reason, to judge each filter:</p>
{_table(["reason", "source", "prompt", "answer", "detail"], ex_rows, left=5) if ex_rows else '<p class="muted">Nothing was removed.</p>'}

<h2>Diversity</h2>
<p>Before: every row read (kept or removed). After: the training set as mixed. Task-type entropy
is normalized by log2 of the {len(data["task_types"] or [])} task types; distinct-n counts distinct
word n-grams of the answers over all n-grams.</p>
{_table(div_header, _diversity_rows(d), left=2)}
{_semantic_html(d.get("semantic") or {})}
{_img(out, images.get("task_types"), "task types")}
{_img(out, images.get("lengths"), "token lengths")}
{_img(out, images.get("languages"), "languages")}

<h2>Duplicates</h2>
{_img(out, images.get("clusters"), "duplicate cluster sizes")}
<p>How often first prompts repeat (normalized like the dedup keys): {_num(pr.get("distinct_prompts"))}
distinct prompts in {_num(pr.get("rows"))} rows; {_num(pr.get("rows_with_repeated_prompt"))} rows
({_pct(pr.get("share_with_repeated_prompt"))}) share their prompt with another row. Different
answers to one prompt are kept by default; set <code>stages.exact_dedup.key: prompt</code> to keep one.</p>
{_table(["most repeated prompts", "rows"], top) if top else ""}

<h2>Mix</h2>
{warnings}
{_img(out, images.get("mix"), "mix target vs realized")}
{_table(["group", "available", "target", "realized", "realized share", "upsampled"], mix_rows) if mix_rows else ""}
<p class="muted">Unit: {_e(mix.get("unit", "rows"))}. Validation rows (carved before mixing, whole
dedup clusters): {_num(data["validation_rows"])}.</p>
</body></html>
"""


def write_report(run_dir: str | Path, out: str | Path) -> Path:
    """Build the report of a run folder into ``out``; returns the path of index.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_run(run_dir)  # the shards are read once, for the numbers and the histograms
    data = report_data(run_dir, loaded)
    train = loaded[1]
    tokens = {
        name: np.asarray(pc.fill_null(train[col], 0).to_numpy(zero_copy_only=False), dtype=float)
        for name, col in (("prompt tokens", "prompt_tokens"), ("answer tokens", "completion_tokens"))
        if col in train.column_names
    }
    images = {
        "funnel": plots.funnel(data, out),
        "rejects": plots.rejects(data, out),
        "task_types": plots.task_types(data, out),
        "languages": plots.languages(data, out),
        "lengths": plots.lengths(data, tokens, out),
        "clusters": plots.clusters(data, out),
        "mix": plots.mix(data, out),
    }
    data["images"] = {k: v for k, v in images.items() if v}
    (out / "report.json").write_text(
        json.dumps(json_safe(data), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    page = out / "index.html"
    page.write_text(render_html(data, images, out), encoding="utf-8")
    log.info("report: %s", page)
    return page


def build_report(run_dir: str | Path) -> dict:
    return report_data(run_dir)

"""Diversity metrics of a set of curated rows, overall and per source.

All computed on columns the stages already wrote (task_type, lang, is_refusal, n_turns, token
counts) plus the assistant text for distinct-n: the report costs no second pass over the stages.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curation.stages.turns import turns

PERCENTILES = (50, 90, 99)


def entropy(labels: list | pl.Series, n_categories: int | None = None) -> dict:
    """Shannon entropy of a label distribution: bits, and normalized to [0, 1] by log2 of the
    number of categories (the categories defined, when given; else those observed)."""
    counts = (
        pl.Series(labels, dtype=pl.String).value_counts()["count"].to_numpy() if len(labels) else np.zeros(0)
    )
    total = counts.sum()
    if total == 0:
        return {"bits": 0.0, "normalized": 0.0, "categories": 0}
    p = counts / total
    bits = float(-(p * np.log2(p)).sum())
    k = n_categories if n_categories is not None else len(counts)
    return {"bits": bits, "normalized": bits / math.log2(k) if k > 1 else 0.0, "categories": int(len(counts))}


def distinct_n(texts: pl.Series, n: int) -> float:
    """Distinct-n (Li et al. 2016): distinct word n-grams / all word n-grams, over all texts
    (lower-cased, split on whitespace). 0 when there is no n-gram."""
    words = (
        pl.DataFrame({"t": texts})
        .with_row_index("doc")
        .select("doc", w=pl.col("t").str.to_lowercase().str.split(" "))
        .explode("w")
        .filter(pl.col("w").is_not_null() & (pl.col("w") != ""))
    )
    if words.height == 0:
        return 0.0
    grams = words.with_columns(
        [pl.col("w").shift(-k).over("doc").alias(f"w{k}") for k in range(1, n)]
    ).drop_nulls()
    if grams.height == 0:
        return 0.0
    key = pl.concat_str([pl.col("w")] + [pl.col(f"w{k}") for k in range(1, n)], separator="\x1f")
    return grams.select(key.n_unique()).item() / grams.height


def distribution(values) -> dict:
    """mean, std, p50/p90/p99, min, max of numeric values (nulls ignored)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float) if len(values) else np.zeros(0)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return {"count": 0}
    out = {"count": int(arr.size), "mean": float(arr.mean()), "std": float(arr.std())}
    for q in PERCENTILES:
        out[f"p{q}"] = float(np.percentile(arr, q))
    out["min"], out["max"] = float(arr.min()), float(arr.max())
    return out


def shares(values) -> dict:
    """Share of each value, largest first."""
    s = pl.Series(values).cast(pl.String).fill_null("unknown")
    if s.len() == 0:
        return {}
    vc = s.value_counts(sort=True)
    return {str(k): c / s.len() for k, c in zip(vc[s.name].to_list(), vc["count"].to_list(), strict=True)}


def assistant_text(table: pa.Table) -> pl.Series:
    t = turns(table)
    joined = t.group_by("row", maintain_order=True).agg(pl.col("content").str.join("\n"))
    return joined["content"].str.replace_all(r"\s+", " ")


def metrics(table: pa.Table, task_types: tuple[str, ...] | None = None) -> dict:
    """Every diversity metric of the rows in ``table`` (missing columns are skipped)."""
    cols = set(table.column_names)
    out: dict = {"rows": table.num_rows}
    if table.num_rows == 0:
        return out
    if "task_type" in cols:
        labels = table["task_type"].to_pylist()
        out["task_types"] = shares(labels)
        out["task_type_entropy"] = entropy(labels, len(task_types) if task_types else None)
    text = assistant_text(table)
    out["distinct_1"] = distinct_n(text, 1)
    out["distinct_2"] = distinct_n(text, 2)
    for col in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if col in cols:
            out[col] = distribution(table[col].to_pylist())
    if "lang" in cols:
        out["languages"] = shares(table["lang"].to_pylist())
    if "is_refusal" in cols:
        flags = [bool(v) for v in table["is_refusal"].to_pylist() if v is not None]
        out["refusal_share"] = sum(flags) / len(flags) if flags else 0.0
    if "n_turns" in cols:
        out["turns"] = distribution(table["n_turns"].to_pylist())
    return out


def metrics_by_source(table: pa.Table, task_types: tuple[str, ...] | None = None) -> dict:
    """{"all": metrics, "by_source": {source: metrics}}."""
    sources = sorted(set(table["source"].to_pylist())) if table.num_rows else []
    by = {}
    for s in sources:
        mask = pc.equal(table["source"], s)
        by[s] = metrics(table.filter(mask), task_types)
    return {"all": metrics(table, task_types), "by_source": by}

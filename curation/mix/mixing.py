"""Proportional mixing of curated rows by source (or task type), and the validation split.

Mixing never changes a row: it chooses how many times each row appears. Downsampling draws
without replacement; upsampling takes whole repeats of a group plus a seeded remainder, capped at
``max_upsample`` times the group (with a warning naming the group). With no targets every row is
kept exactly once. Targets are in rows, or in trainable (completion) tokens. Everything is
deterministic under the seed: each group draws from its own generator seeded by (seed, name).

The validation split is carved before mixing, by whole dedup clusters, so that no copy of a
validation row is trained on and no cluster straddles train and validation.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curation.config import MixConfig, SplitConfig

log = logging.getLogger(__name__)


@dataclass
class MixResult:
    source: pa.Table  # the rows mixed
    copies: np.ndarray  # per row: how many times it appears (0 = dropped)
    dropped: pa.Table  # rows chosen zero times, with ``reject_stage``/``reject_reason``
    report: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def table(self) -> pa.Table:
        """The mixed rows (repeats adjacent, in input order), with ``mix_copy`` (0 = first copy)."""
        n = self.source.num_rows
        order = np.repeat(np.arange(n), self.copies)
        copy_no = np.arange(len(order)) - np.repeat(np.cumsum(self.copies) - self.copies, self.copies)
        mixed = self.source.take(pa.array(order, pa.int64()))
        return mixed.append_column("mix_copy", pa.array(copy_no, pa.int32()))


def _group_rng(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}\x1f{name}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _largest_remainder(wants: dict[str, float], total: int) -> dict[str, int]:
    floors = {g: int(np.floor(w)) for g, w in wants.items()}
    left = total - sum(floors.values())
    for g in sorted(wants, key=lambda g: (-(wants[g] - floors[g]), g))[: max(0, left)]:
        floors[g] += 1
    return floors


def _pick(weights: np.ndarray, want: float, by_tokens: bool, rng: np.random.Generator) -> np.ndarray:
    """How many copies of each row of one group: whole repeats, then a seeded remainder."""
    n = len(weights)
    copies = np.zeros(n, dtype=np.int64)
    if n == 0 or want <= 0:
        return copies
    avail = float(weights.sum()) if by_tokens else float(n)
    if avail <= 0:
        return copies
    repeats = int(want // avail)
    copies += repeats
    rest = want - repeats * avail
    order = rng.permutation(n)
    if by_tokens:
        cum = np.cumsum(weights[order])
        k = int(np.searchsorted(cum, rest, side="left")) + 1 if rest > 0 else 0
    else:
        k = int(round(rest))
    copies[order[: min(k, n)]] += 1
    return copies


def mix(table: pa.Table, cfg: MixConfig, seed: int = 0) -> MixResult:
    n = table.num_rows
    by = cfg.by
    # Group codes (dictionary-encoded, no Python object per row); a null group is named "None".
    encoded = pc.dictionary_encode(pc.cast(table[by], pa.string()).combine_chunks()) if n else None
    names_by_code = [str(v) for v in encoded.dictionary.to_pylist()] if n else []
    codes = encoded.indices.to_numpy(zero_copy_only=False) if n else np.zeros(0, dtype=np.int64)
    if n and encoded.indices.null_count:
        names_by_code.append("None")
        codes = np.where(
            pc.is_null(encoded.indices).to_numpy(zero_copy_only=False), len(names_by_code) - 1, codes
        )
    code_of = {g: i for i, g in enumerate(names_by_code)}

    def rows_of(g: str) -> np.ndarray:
        return codes == code_of[g] if g in code_of else np.zeros(n, dtype=bool)

    by_tokens = cfg.total_tokens is not None
    if by_tokens and "completion_tokens" not in table.column_names:
        raise ValueError("mix.total_tokens needs token counts: enable the length stage")
    weights = (
        np.nan_to_num(table["completion_tokens"].to_numpy(zero_copy_only=False).astype(float))
        if by_tokens
        else np.ones(n)
    )
    names = sorted(set(names_by_code))
    avail = {g: float(weights[rows_of(g)].sum()) for g in names}
    warnings: list[str] = []
    copies = np.ones(n, dtype=np.int64)
    targets: dict[str, float] = {}
    if cfg.targets:
        total_w = sum(cfg.targets.values())
        targets = {g: w / total_w for g, w in cfg.targets.items()}
        for g in targets:
            if g not in avail:
                warnings.append(f"mix target for {by} {g!r} cannot be met: no curated rows")
        for g in names:
            if g not in targets:
                warnings.append(
                    f"{by} {g!r} has no mix target: its {int(rows_of(g).sum())} rows are left out"
                )
        present = {g: s for g, s in targets.items() if g in avail and avail[g] > 0}
        if cfg.total_rows is not None:
            total = float(cfg.total_rows)
        elif by_tokens:
            total = float(cfg.total_tokens)
        else:  # the largest mix that needs no repeats
            total = min((avail[g] / s for g, s in present.items()), default=0.0)
        wants = {g: targets[g] * total for g in present}
        if not by_tokens:
            wants = {
                g: float(v)
                for g, v in _largest_remainder(wants, int(round(total * sum(present.values())))).items()
            }
        copies = np.zeros(n, dtype=np.int64)
        for g, want in wants.items():
            cap = cfg.max_upsample * avail[g]
            if want > cap + 1e-9:
                unit = "tokens" if by_tokens else "rows"
                warnings.append(
                    f"mix target for {by} {g!r} cannot be met: {want:,.0f} {unit} wanted, "
                    f"{avail[g]:,.0f} available, capped at max_upsample={cfg.max_upsample:g}x ({cap:,.0f})"
                )
                want = np.floor(cap) if not by_tokens else cap
            elif want > avail[g] + 1e-9:
                log.warning("mix: %s %r upsampled %.2fx", by, g, want / avail[g])
            idx = np.flatnonzero(rows_of(g))
            copies[idx] = _pick(weights[idx], want, by_tokens, _group_rng(seed, g))
    for w in warnings:
        log.warning("%s", w)

    dropped_idx = np.flatnonzero(copies == 0)
    dropped = table.take(pa.array(dropped_idx, pa.int64()))
    reason_of = pa.array(
        [f"mix_downsampled:{g}" if g in targets else f"mix_not_in_targets:{g}" for g in names_by_code],
        pa.string(),
    )
    reasons = reason_of.take(pa.array(codes[dropped_idx])) if n else pa.array([], pa.string())
    dropped = dropped.append_column("reject_stage", pa.array(["mix"] * len(dropped_idx), pa.string()))
    dropped = dropped.append_column("reject_reason", reasons)

    realized_total = float((copies * weights).sum())
    report = {
        "by": by,
        "unit": "tokens" if by_tokens else "rows",
        "targets_given": bool(cfg.targets),
        "groups": {},
        "warnings": warnings,
        "rows_out": int(copies.sum()),
        "unique_rows_out": int((copies > 0).sum()),
    }
    for g in sorted(set(names) | set(targets)):
        sel = rows_of(g)
        got = float((copies[sel] * weights[sel]).sum())
        report["groups"][g] = {
            "available": avail.get(g, 0.0),
            "target_share": targets.get(g) if cfg.targets else None,
            "realized": got,
            "realized_share": got / realized_total if realized_total else 0.0,
            "rows": int(copies[sel].sum()),
            "unique_rows": int((copies[sel] > 0).sum()),
            "upsample": got / avail[g] if avail.get(g) else 0.0,
        }
    return MixResult(table, copies, dropped, report, warnings)


def split_validation(table: pa.Table, cfg: SplitConfig, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(train, validation): whole dedup clusters (``dup_cluster``, else the row's ``id``) go to
    validation in a seeded hash order until it holds the requested rows."""
    n = table.num_rows
    want = cfg.validation_rows if cfg.validation_rows is not None else int(round(cfg.validation * n))
    if n == 0 or want <= 0:
        return table, table.slice(0, 0)
    ids = pl.Series(table["id"].combine_chunks()).cast(pl.String)
    cluster = (
        pl.Series(table["dup_cluster"].combine_chunks().cast(pa.string())).cast(pl.String)
        if "dup_cluster" in table.column_names
        else pl.Series([None] * n, dtype=pl.String)
    )
    unit = cluster.fill_null(ids)
    df = pl.DataFrame({"row": np.arange(n), "unit": unit})
    units = (
        df.group_by("unit")
        .agg(pl.len().alias("size"))
        .with_columns(h=pl.col("unit").hash(seed=seed & 0xFFFFFFFF))
        .sort(["h", "unit"])
        .with_columns(cum=pl.col("size").cum_sum())
    )
    # Units in hash order until the validation set reaches the requested size.
    take = units.filter(pl.col("cum") - pl.col("size") < want)["unit"]
    is_val = df["unit"].is_in(take.implode()).to_numpy()
    return table.filter(pa.array(~is_val)), table.filter(pa.array(is_val))

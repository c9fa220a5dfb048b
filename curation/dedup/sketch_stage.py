"""Dedup sketches computed per batch, in the map phase, so the global dedup sees compact columns.

For each row: the exact-dedup key as two independent 64-bit hashes of its normalized key text
(a 128-bit key: a false match among 10^9 rows has probability ~10^-21), and the near-dedup
MinHash signature with its LSH band keys. The signature goes to disk (``SIGNATURE``, taken off
by the staging area); the band keys and exact keys stay in memory for the global stages, which
therefore never hold the texts. Runs in the worker processes like every map stage, so the
sketching is spread over all cores. Tags only: it removes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from curation.dedup.keys import key_texts
from curation.dedup.lsh import all_band_keys
from curation.stages.base import Stage

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import ExactDedupConfig, NearDedupConfig

EXACT_A, EXACT_B = "_exact_key_a", "_exact_key_b"
BANDS, SIGNATURE, NEAR_SKIP, MERIT = "_lsh_bands", "_minhash", "_near_skip", "_merit"


def fixed_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])


def list_matrix(column) -> np.ndarray:
    """(n, width) numpy matrix from a fixed-size list column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = arr.type.list_size
    return arr.flatten().to_numpy().reshape(-1, width)


def assistant_chars(table: pa.Table) -> np.ndarray:
    from curation.stages.turns import turns

    t = turns(table).group_by("row").agg(pl.col("content").str.len_chars().sum().alias("n"))
    out = np.zeros(table.num_rows)
    out[t["row"].to_numpy()] = t["n"].to_numpy()
    return out


def merit(table: pa.Table) -> np.ndarray:
    """How much a row teaches (the dedup survivor is the member with most): assistant tokens if
    counted, else assistant characters."""
    if MERIT in table.column_names:
        return table[MERIT].to_numpy()
    if "completion_tokens" in table.column_names:
        return np.nan_to_num(table["completion_tokens"].to_numpy(zero_copy_only=False).astype(float), nan=0.0)
    return assistant_chars(table)


class DedupSketchStage(Stage):
    name = "dedup_sketch"

    def __init__(self, exact: ExactDedupConfig | None, near, near_cfg: NearDedupConfig | None = None):
        """``near`` is the run's NearDedupStage (its band layout), or None."""
        self.exact = exact
        self.near = near
        self.near_cfg = near_cfg

    def score(self, batch):
        cols: dict = {MERIT: merit(batch)}
        texts: dict[str, pl.Series] = {}

        def key(kind: str) -> pl.Series:
            if kind not in texts:
                texts[kind] = key_texts(batch, kind)
            return texts[kind]

        if self.exact is not None:
            k = key(self.exact.key)
            if self.exact.lowercase:
                k = k.str.to_lowercase()
            cols[EXACT_A] = k.hash(seed=0x5EED).to_numpy()
            cols[EXACT_B] = k.hash(seed=0xC0FFEE).to_numpy()
        if self.near is not None:
            c = self.near_cfg
            k = key(c.key)
            sig = self.near.sketch(batch, k)
            cols[SIGNATURE] = fixed_list(sig)
            cols[BANDS] = fixed_list(all_band_keys(sig[:, : c.num_perm], self.near.bands, self.near.rows))
            cols[NEAR_SKIP] = (k.str.len_chars() == 0).to_numpy()
        return cols

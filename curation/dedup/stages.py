"""Exact and near-duplicate removal as global stages (they need every row of the run at once).

Both mark clusters with ``dup_cluster`` (the survivor's id; null for unique rows) and reject the
other members with ``duplicate_of`` (the survivor's id). The survivor is, by default, the member
with the most assistant tokens, ties broken by the smallest id: the same survivors on every run.
Only compact columns (key hashes, signatures, lengths, ids) are held for the whole run.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

import numpy as np
import polars as pl
import pyarrow as pa

from curation.config import ExactDedupConfig, NearDedupConfig
from curation.dedup.keys import KeyCache
from curation.dedup.lsh import (
    candidate_pairs,
    estimated_jaccard,
    optimal_bands,
    split_loose_members,
    union_find,
)
from curation.dedup.minhash import oph_signatures, signatures
from curation.stages.base import Stage

log = logging.getLogger(__name__)


def _merit(table: pa.Table) -> np.ndarray:
    """How much a row teaches: assistant tokens if counted, else assistant characters."""
    if "completion_tokens" in table.column_names:
        return np.nan_to_num(table["completion_tokens"].to_numpy(zero_copy_only=False).astype(float), nan=0.0)
    from curation.stages.turns import turns

    t = turns(table).group_by("row").agg(pl.col("content").str.len_chars().sum().alias("n"))
    out = np.zeros(table.num_rows)
    out[t["row"].to_numpy()] = t["n"].to_numpy()
    return out


def resolve_clusters(table: pa.Table, cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dup_cluster, duplicate_of) per row from a cluster label per row."""
    ids = np.asarray(table["id"].to_pylist(), dtype=object)
    df = pl.DataFrame(
        {"row": np.arange(table.num_rows), "cluster": cluster, "merit": _merit(table), "id": ids.tolist()}
    )
    sizes = df.group_by("cluster").len()
    # Identical conversations share an id, so the survivor is a row: ties end on the row order.
    ranked = df.sort(["cluster", "merit", "id", "row"], descending=[False, True, False, False])
    survivors = (
        ranked.group_by("cluster", maintain_order=True)
        .first()
        .select("cluster", survivor="id", survivor_row="row")
    )
    joined = df.join(sizes, on="cluster").join(survivors, on="cluster").sort("row")
    multi = joined["len"].to_numpy() > 1
    survivor = np.asarray(joined["survivor"].to_list(), dtype=object)
    removed = multi & (joined["survivor_row"].to_numpy() != np.arange(table.num_rows))
    dup_cluster = np.where(multi, survivor, None)
    duplicate_of = np.where(removed, survivor, None)
    return dup_cluster, duplicate_of


class _DedupStage(Stage, ABC):
    """Shared score/decide of the dedup stages; a subclass says how rows cluster."""

    reason = "duplicate"

    @abstractmethod
    def clusters(self, table: pa.Table) -> np.ndarray:
        """A cluster label per row (rows with equal labels are duplicates of each other)."""

    def score(self, batch):
        dup_cluster, duplicate_of = resolve_clusters(batch, self.clusters(batch))
        if "dup_cluster" in batch.column_names:  # keep an earlier stage's cluster for rows not clustered here
            earlier = np.asarray(batch["dup_cluster"].to_pylist(), dtype=object)
            dup_cluster = np.where(dup_cluster == None, earlier, dup_cluster)  # noqa: E711
        return {
            "dup_cluster": pa.array(dup_cluster.tolist(), pa.string()),
            "duplicate_of": pa.array(duplicate_of.tolist(), pa.string()),
        }

    def decide(self, batch):
        dup = np.asarray(batch["duplicate_of"].to_pylist(), dtype=object)
        return np.where(dup != None, self.reason, None)  # noqa: E711


class ExactDedupStage(_DedupStage):
    name = "exact_dedup"

    def __init__(self, cfg: ExactDedupConfig | None = None, keys: KeyCache | None = None):
        self.cfg = cfg or ExactDedupConfig()
        self.keys = keys or KeyCache()
        self.reason = f"exact_duplicate:{self.cfg.key}"

    def clusters(self, table):
        # Equal normalized keys (compared in full, not by hash) get the same dense rank.
        return self.keys.get(table, self.cfg.key).rank("dense").to_numpy().astype(np.int64)


class NearDedupStage(_DedupStage):
    name = "near_dedup"

    def __init__(self, cfg: NearDedupConfig | None = None, keys: KeyCache | None = None):
        self.cfg = cfg or NearDedupConfig()
        self.keys = keys or KeyCache()
        self.reason = f"near_duplicate:{self.cfg.key}"
        c = self.cfg
        if c.bands and c.rows:
            self.bands, self.rows = c.bands, c.rows
        else:
            self.bands, self.rows = optimal_bands(
                c.threshold, c.num_perm, c.false_positive_weight, c.false_negative_weight
            )
        margin = (
            c.verify_margin
            if c.verify_margin is not None
            else 2 * (c.threshold * (1 - c.threshold) / c.num_perm) ** 0.5
        )
        self.verify_at = c.threshold - margin
        self.cluster_floor = c.cluster_floor if c.cluster_floor is not None else max(0.0, c.threshold - 0.15)

    def clusters(self, table):
        keys = self.keys.get(table, self.cfg.key)
        sketch = oph_signatures if self.cfg.sketch == "oph" else signatures
        sig = sketch(keys, self.cfg.num_perm, self.cfg.ngram, self.cfg.char_ngram, self.cfg.seed)
        return self.cluster_signatures(sig, skip=(keys.str.len_chars() == 0).to_numpy())

    def cluster_signatures(self, sig: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
        """Cluster labels from signatures: LSH candidates, each verified, union-find, loose
        members split off. Rows flagged in ``skip`` (empty keys) never join a cluster."""
        pairs = candidate_pairs(sig, self.bands, self.rows)
        # Every candidate pair is verified before it may merge clusters.
        verified = pairs[estimated_jaccard(sig, pairs) >= self.verify_at] if len(pairs) else pairs
        if len(verified) and skip is not None:
            verified = verified[~(skip[verified[:, 0]] | skip[verified[:, 1]])]
        log.info(
            "near dedup: %d candidate pairs, %d verified (b=%d, r=%d)",
            len(pairs),
            len(verified),
            self.bands,
            self.rows,
        )
        return split_loose_members(sig, union_find(sig.shape[0], verified), self.cluster_floor)

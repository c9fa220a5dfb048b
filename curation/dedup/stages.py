"""Exact and near-duplicate removal as global stages (they need every row of the run at once).

Both mark clusters with ``dup_cluster`` (the survivor's id; null for unique rows) and reject the
other members with ``duplicate_of`` (the survivor's id). The survivor is, by default, the member
with the most assistant tokens, ties broken by the smallest id: the same survivors on every run.
Only compact columns (key hashes, signatures, lengths, ids) are held for the whole run.
"""

from __future__ import annotations

import logging
import mmap
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.keys import KeyCache, role_texts, shingle_texts
from curation.dedup.lsh import (
    candidate_pairs,
    candidate_pairs_from_keys,
    estimated_jaccard,
    optimal_bands,
    split_loose_members,
    union_find,
)
from curation.dedup.minhash import densified, oph_signatures, signatures
from curation.dedup.sketch_stage import BANDS, EXACT_A, EXACT_B, NEAR_SKIP, list_matrix, merit
from curation.stages.base import Stage
from curation.stages.plain_config import config_or_default

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import ExactDedupConfig, NearDedupConfig

log = logging.getLogger(__name__)


def resolve_clusters(table: pa.Table, cluster: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """(dup_cluster, duplicate_of) per row from a cluster label per row.

    The survivor of a cluster is its member with the most merit, then the smallest id, then the
    first row (identical conversations share an id). Only rows in clusters of two or more are
    ranked and sorted (most rows are unique), in numpy on integer columns; ids are gathered at
    the end, so memory stays a few integers per clustered row.
    """
    n = table.num_rows
    if n == 0:
        return pa.nulls(0, pa.string()), pa.nulls(0, pa.string())
    cluster = np.asarray(cluster, dtype=np.int64)
    if cluster.min() >= 0 and cluster.max() < 4 * n:
        size = np.bincount(cluster)[cluster]
    else:
        _, inverse, counts = np.unique(cluster, return_inverse=True, return_counts=True)
        size = counts[inverse.ravel()]
    multi = size > 1
    rows = np.flatnonzero(multi)  # ascending: the row order breaks the last ties
    ids = table["id"].combine_chunks()
    survivor = np.zeros(n, dtype=np.int64)
    if len(rows):
        id_rank = pc.rank(ids.take(pa.array(rows)), sort_keys="ascending", tiebreaker="dense").to_numpy()
        order = np.lexsort((rows, id_rank, -merit(table)[rows], cluster[rows]))  # the last key sorts first
        sorted_cluster = cluster[rows][order]
        starts = np.flatnonzero(np.r_[True, sorted_cluster[1:] != sorted_cluster[:-1]])
        group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(rows)]))
        survivor[rows[order]] = rows[order[starts]][group]
    # Masked indices take nulls directly: no full-length intermediate of survivor ids.
    dup_cluster = ids.take(pa.array(survivor, mask=~multi))
    duplicate_of = ids.take(pa.array(survivor, mask=~(multi & (survivor != np.arange(n)))))
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
            dup_cluster = pc.coalesce(dup_cluster, batch["dup_cluster"].combine_chunks().cast(pa.string()))
        return {"dup_cluster": dup_cluster, "duplicate_of": duplicate_of}

    def decide(self, batch):
        dup = batch["duplicate_of"]
        return pc.if_else(pc.is_valid(dup), pa.scalar(self.reason), pa.scalar(None, pa.string()))


class ExactDedupStage(_DedupStage):
    name = "exact_dedup"

    def __init__(self, cfg: ExactDedupConfig | None = None, keys: KeyCache | None = None):
        self.cfg = config_or_default(cfg, "ExactDedupConfig")
        self.keys = keys or KeyCache()
        self.reason = f"exact_duplicate:{self.cfg.key}"

    def clusters(self, table):
        if EXACT_A in table.column_names:  # sketched in the map phase: a 128-bit hash of the key
            keys = pl.DataFrame({"a": table[EXACT_A].to_numpy(), "b": table[EXACT_B].to_numpy()})
            return keys.select(pl.struct("a", "b").rank("dense")).to_series().to_numpy().astype(np.int64)
        # Equal normalized keys (compared in full, not by hash) get the same dense rank.
        keys = self.keys.get(table, self.cfg.key, lowercase=self.cfg.lowercase)
        return keys.rank("dense").to_numpy().astype(np.int64)


class NearDedupStage(_DedupStage):
    name = "near_dedup"

    def __init__(self, cfg: NearDedupConfig | None = None, keys: KeyCache | None = None):
        self.cfg = config_or_default(cfg, "NearDedupConfig")
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

    # Set by an engine for a run whose sketches were computed in the map phase: the signatures
    # of the run's rows (indexable by ``_pos``, e.g. a memory map) and, optionally, a function
    # from (n, bands) band keys to candidate pairs (a distributed group-by).
    signature_store = None
    band_store = None  # positions -> per-band key arrays (staged on disk)
    pair_finder = None

    @property
    def segments(self) -> int:
        """Signature parts: the key, then (verify_roles) the user turns and the assistant turns."""
        return 3 if self.cfg.verify_roles else 1

    @property
    def signature_width(self) -> int:
        return self.cfg.num_perm * self.segments

    def sketch(self, table: pa.Table, keys: pl.Series | None = None) -> np.ndarray:
        """(rows, signature_width) uint32: the key's signature, then (verify_roles) the user turns'
        and the assistant turns'. The role parts only verify (no LSH bands), so they are not
        densified; a conversation key is the union of their shingles, so its signature is their
        elementwise minimum (densified once) instead of a third pass over the texts."""
        c = self.cfg
        if table.num_rows == 0:
            return np.zeros((0, self.signature_width), dtype=np.uint32)
        if not c.verify_roles:
            key = keys if keys is not None else self.keys.get(table, c.key)
            return self._signatures(shingle_texts(key), densify=True)
        prompts, response = role_texts(table)
        user = self._signatures(shingle_texts(prompts), densify=False)
        assistant = self._signatures(shingle_texts(response), densify=False)
        if c.key == "conversation":
            key_sig = np.minimum(user, assistant)
            if c.sketch == "oph":
                key_sig = densified(key_sig, c.seed)
        else:
            key = keys if keys is not None else self.keys.get(table, c.key)
            key_sig = self._signatures(shingle_texts(key), densify=True)
        return np.hstack([key_sig, user, assistant]).astype(np.uint32)

    def _signatures(self, texts: pl.Series, densify: bool) -> np.ndarray:
        c = self.cfg
        if c.sketch == "oph":
            return oph_signatures(texts, c.num_perm, c.ngram, c.char_ngram, c.seed, densify=densify)
        return signatures(texts, c.num_perm, c.ngram, c.char_ngram, c.seed)  # k permutations: no empty bins

    def similarity(self, sig, pairs: np.ndarray) -> np.ndarray:
        """Estimated Jaccard per pair: the least over the signature's parts."""
        return estimated_jaccard(sig, pairs, self.segments)

    def clusters(self, table):
        if NEAR_SKIP in table.column_names and self.signature_store is not None:
            positions = table["_pos"].to_numpy()
            sig = RowLookup(self.signature_store, positions)
            bands = list_matrix(table[BANDS]) if BANDS in table.column_names else self.band_store(positions)
            pairs = (self.pair_finder or candidate_pairs_from_keys)(bands)
            return self.cluster_signatures(sig, table[NEAR_SKIP].to_numpy(zero_copy_only=False), pairs)
        keys = self.keys.get(table, self.cfg.key)
        sig = self.sketch(table, keys)
        return self.cluster_signatures(sig, skip=(keys.str.len_chars() == 0).to_numpy())

    def cluster_signatures(
        self, sig, skip: np.ndarray | None = None, pairs: np.ndarray | None = None
    ) -> np.ndarray:
        """Cluster labels from signatures: LSH candidates (unless given), each verified,
        union-find, loose members split off. Rows flagged in ``skip`` (empty keys) never join a
        cluster."""
        if pairs is None:
            pairs = candidate_pairs(sig[:, : self.cfg.num_perm], self.bands, self.rows)
        # Every candidate pair is verified before it may merge clusters: on the key and, with
        # verify_roles, on the user turns and on the assistant turns each.
        verified = pairs[self.similarity(sig, pairs) >= self.verify_at] if len(pairs) else pairs
        if len(verified) and skip is not None:
            verified = verified[~(skip[verified[:, 0]] | skip[verified[:, 1]])]
        log.info(
            "near dedup: %d candidate pairs, %d verified (b=%d, r=%d)",
            len(pairs),
            len(verified),
            self.bands,
            self.rows,
        )
        return split_loose_members(sig, union_find(len(sig), verified), self.cluster_floor, self.segments)


class RowLookup:
    """Rows of a signature matrix (often a memory map of the staged run) by position: only the
    rows a candidate pair or cluster touches are read."""

    def __init__(self, store, positions: np.ndarray):
        self.store, self.positions = store, positions

    def __len__(self) -> int:
        return len(self.positions)

    CHUNK = 512  # rows read between releases of the mapped pages (each read maps ~64 KB around it)

    def __getitem__(self, idx) -> np.ndarray:
        rows = self.positions[idx]
        order = np.argsort(rows, kind="stable")  # read the store in ascending order
        out = np.empty((len(rows), self.store.shape[1]), dtype=self.store.dtype)
        mapped = getattr(self.store, "_mmap", None)
        for i in range(0, len(rows), self.CHUNK):
            part = order[i : i + self.CHUNK]
            out[part] = self.store[rows[part]]
            if mapped is not None:  # a memory map: let the pages read go (they stay in the page cache)
                mapped.madvise(mmap.MADV_DONTNEED)
        return out

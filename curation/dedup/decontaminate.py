"""Decontamination: drop training rows that share a long n-gram with an evaluation item.

Evaluation files are read with the same readers as sources (any format). Texts are compared as
lower-cased words (NFKC, punctuation dropped), and a training row is removed when any of its
word 13-grams (the n of the GPT-3 and Tulu decontamination work; configurable) occurs in an
evaluation prompt or answer. Items shorter than n words count as one whole-text n-gram. The
reject reason names the evaluation set and item.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from curation.dedup.keys import nfkc
from curation.dedup.minhash import shingle_hashes
from curation.io.reader import read_source
from curation.stages.base import Stage
from curation.stages.turns import turns

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import DecontaminationConfig

log = logging.getLogger(__name__)


def _texts(table: pa.Table) -> pl.Series:
    t = turns(table, roles=("user", "assistant"))
    joined = t.group_by("row", maintain_order=True).agg(text=pl.col("content").str.join(" "))
    out = np.full(table.num_rows, "", dtype=object)
    if joined.height:
        out[joined["row"].to_numpy()] = joined["text"].to_list()
    return (
        nfkc(pl.Series("text", out.tolist(), dtype=pl.String))
        .str.to_lowercase()
        .str.replace_all(r"[^\w]+", " ")
        .str.strip_chars()
    )


class DecontaminationStage(Stage):
    name = "decontamination"

    def __init__(self, cfg: DecontaminationConfig, base_dir: Path | None = None):
        self.cfg = cfg
        labels, hashes = [], []
        for source in cfg.eval_sets:
            records = read_source(source, base_dir).records
            h, doc = shingle_hashes(_texts(records), cfg.ngram)
            ids = records["id"].to_pylist()
            labels += [f"{source.name}:{ids[d]}" for d in doc]
            hashes.append(h)
        self.hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        order = np.argsort(self.hashes, kind="stable")
        self.hashes = self.hashes[order]
        self.labels = np.asarray(labels, dtype=object)[order] if labels else np.zeros(0, dtype=object)
        log.info("decontamination: %d evaluation %d-grams", len(self.hashes), cfg.ngram)

    def score(self, batch):
        match = np.full(batch.num_rows, None, dtype=object)
        if len(self.hashes) and batch.num_rows:
            h, doc = shingle_hashes(_texts(batch), self.cfg.ngram)
            pos = np.searchsorted(self.hashes, h)
            pos = np.minimum(pos, len(self.hashes) - 1)
            hit = self.hashes[pos] == h
            for d, p in zip(doc[hit][::-1], pos[hit][::-1], strict=True):  # reversed: first hit per row wins
                match[d] = self.labels[p]
        return {"contaminated_by": pa.array(match.tolist(), pa.string())}

    def decide(self, batch):
        match = np.asarray(batch["contaminated_by"].to_pylist(), dtype=object)
        return np.where(match != None, "contaminated:" + match.astype(str), None)  # noqa: E711

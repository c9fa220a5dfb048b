"""Optional cap on the share of refusals per source (a global stage: it needs each source whole).

When a source's refusal share exceeds ``max_share``, the excess refusals are rejected, chosen by a
seeded hash of their ids so that the choice is the same in every run.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pyarrow as pa

from curation.stages.base import Stage


class RefusalCapStage(Stage):
    name = "refusal_cap"

    def __init__(self, max_share: float, seed: int = 0):
        self.max_share = max_share
        self.seed = seed

    def decide(self, batch: pa.Table):
        reasons = np.full(batch.num_rows, None, dtype=object)
        sources = np.asarray(batch["source"].to_pylist(), dtype=object)
        refusal = batch["is_refusal"].to_numpy(zero_copy_only=False)
        ids = batch["id"].to_pylist()
        for src in np.unique(sources):
            rows = np.flatnonzero(sources == src)
            ref = rows[refusal[rows]]
            n, r = len(rows), len(ref)
            # Largest k with k / (n - r + k) <= max_share: keep k refusals.
            non = n - r
            k = r if self.max_share >= 1 else min(r, math.floor(self.max_share * non / (1 - self.max_share)))
            if k >= r:
                continue
            order = sorted(
                ref, key=lambda i: hashlib.blake2b(f"{self.seed}:{ids[i]}".encode(), digest_size=8).digest()
            )
            reasons[order[k:]] = f"refusal_share>{self.max_share:g}"
        return reasons

"""MinHash signatures for many texts at once (numpy, no per-shingle Python loop).

Shingles are word n-grams (default 5; texts shorter than n words are one shingle) or character
n-grams. A shingle's 64-bit hash comes from a rolling combination of polars word hashes,
truncated to 32 bits; each permutation is a multiply-shift hash ``(a * h + b) >> 32`` with odd
64-bit ``a`` (a universal family for 32-bit keys; twice as fast in numpy as datasketch's
``(a * h + b) mod (2^61 - 1)``, no division), computed for a block of documents and a block of
permutations at a time (bounded memory), and reduced to the per-document minimum with
``np.minimum.reduceat``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

MAX32 = np.uint64((1 << 32) - 1)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 1 << 64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


def shingle_hashes(
    texts: pl.Series, ngram: int = 5, char_ngram: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(shingle hashes, document index of each), documents contiguous and in order."""
    df = pl.DataFrame({"text": texts}).with_row_index("doc")
    if char_ngram:
        # Character n-grams: every position's n characters.
        units = df.select("doc", u=pl.col("text").str.split("")).explode("u").drop_nulls("u")
        n = char_ngram
    else:
        units = df.select("doc", u=pl.col("text").str.extract_all(r"\S+")).explode("u").drop_nulls("u")
        n = ngram
    units = units.with_columns(h=pl.col("u").hash(seed=11))
    doc = units["doc"].to_numpy().astype(np.int64)
    h = units["h"].to_numpy()
    n_docs = len(texts)
    counts = np.bincount(doc, minlength=n_docs)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(doc)) - starts[doc] if len(doc) else np.zeros(0, dtype=np.int64)
    remaining = counts[doc] - pos
    g = h.copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):
            shifted = np.zeros_like(h)
            shifted[:-k] = h[k:]
            g = (g * _MIX) ^ shifted
    full = remaining >= n
    # Documents shorter than n units: one shingle, the hash of all their units.
    short_docs = np.flatnonzero((counts > 0) & (counts < n))
    keep_g, keep_doc = g[full], doc[full]
    if len(short_docs):
        first = starts[short_docs]
        sh = np.zeros(len(short_docs), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(n - 1):
                idx = first + k
                ok = k < counts[short_docs]
                sh = np.where(ok, (sh * _MIX) ^ h[np.minimum(idx, len(h) - 1)], sh)
        keep_g = np.concatenate([keep_g, sh])
        keep_doc = np.concatenate([keep_doc, short_docs])
        order = np.argsort(keep_doc, kind="stable")
        keep_g, keep_doc = keep_g[order], keep_doc[order]
    return keep_g & MAX32, keep_doc


def signatures(
    texts: pl.Series,
    num_perm: int = 128,
    ngram: int = 5,
    char_ngram: int | None = None,
    seed: int = 1,
    block: int = 1 << 18,
) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash signatures; an empty text gets all-max values."""
    hashes, doc = shingle_hashes(texts, ngram, char_ngram)
    n_docs = len(texts)
    a, b = permutations(num_perm, seed)
    sig = np.full((n_docs, num_perm), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    if len(hashes) == 0:
        return sig
    # Blocks of whole documents, so that reduceat segments never straddle a block.
    bounds = np.flatnonzero(np.diff(doc)) + 1
    seg_starts = np.concatenate([[0], bounds])
    seg_docs = doc[seg_starts]
    i = 0
    while i < len(seg_starts):
        j = np.searchsorted(seg_starts, seg_starts[i] + block, side="right")
        j = max(j, i + 1)
        lo = seg_starts[i]
        hi = seg_starts[j] if j < len(seg_starts) else len(hashes)
        x = hashes[lo:hi]
        local_starts = seg_starts[i:j] - lo
        with np.errstate(over="ignore"):
            for p0 in range(0, num_perm, 32):
                pa_, pb = a[p0 : p0 + 32], b[p0 : p0 + 32]
                hv = (x[:, None] * pa_[None, :] + pb[None, :]) >> np.uint64(32)
                sig[seg_docs[i:j], p0 : p0 + 32] = np.minimum.reduceat(hv, local_starts, axis=0).astype(
                    np.uint32
                )
        i = j
    return sig


def oph_signatures(
    texts: pl.Series, num_perm: int = 128, ngram: int = 5, char_ngram: int | None = None, seed: int = 1
) -> np.ndarray:
    """One-permutation hashing with rotation densification (Li, Owen & Zhang 2012; Shrivastava &
    Li 2014): each shingle is hashed once and falls into one of ``num_perm`` bins by its top bits;
    a bin keeps its minimum; an empty bin borrows the next non-empty bin to its right, offset by
    the distance. Same Jaccard estimator as k-permutation MinHash (the fraction of equal
    positions), for O(shingles) work instead of O(shingles x permutations).
    """
    hashes, doc = shingle_hashes(texts, ngram, char_ngram)
    n_docs = len(texts)
    k = num_perm
    empty_value = np.uint64(0xFFFFFFFF)
    sig = np.full((n_docs, k), empty_value, dtype=np.uint64)
    if len(hashes):
        a, b = permutations(1, seed)
        with np.errstate(over="ignore"):
            h = hashes * a[0] + b[0]  # one 64-bit multiply-shift-style mix of the 32-bit shingle hash
        bins = (h % np.uint64(k)).astype(np.int64)
        vals = h >> np.uint64(32)
        np.minimum.at(sig, (doc, bins), vals)
    empty = sig == empty_value
    nonempty_rows = ~empty.all(axis=1)
    if empty.any():
        # Next non-empty bin to the right (circularly), found on the doubled row.
        cols = np.arange(2 * k)
        e2 = np.concatenate([empty, empty], axis=1)
        idx = np.where(e2, 2 * k, cols[None, :])
        nxt = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1][:, :k]
        dist = (nxt - np.arange(k)[None, :]).astype(np.uint64)
        src = np.minimum(nxt, 2 * k - 1) % k
        borrowed = np.take_along_axis(sig, src, axis=1) + dist * np.uint64(0x9E3779B1)
        sig = np.where(empty & nonempty_rows[:, None], borrowed, sig)
    return (sig & np.uint64(0xFFFFFFFF)).astype(np.uint32)

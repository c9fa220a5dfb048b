"""LSH banding over MinHash signatures, verification, and union-find clustering."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import numpy as np

from curation.dedup.minhash import EMPTY_BIN
from curation.run.resources import usable_cores


def optimal_bands(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive + false negative probability mass
    around the Jaccard threshold, as datasketch's MinHashLSH chooses them (trapezoid rule on 200
    points; every (bands, rows) pair at once)."""
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    b, r = pairs[:, :1].astype(np.float64), pairs[:, 1:].astype(np.float64)
    lo, hi = np.linspace(0.0, threshold, 200), np.linspace(threshold, 1.0, 200)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz
    fp = trapezoid(1 - (1 - lo**r) ** b, lo, axis=1)
    fn = trapezoid(1 - (1 - (1 - hi**r) ** b), hi, axis=1)
    best = int(np.argmin(fp * fp_weight + fn * fn_weight))  # the first of equal ones, as a loop would
    return int(pairs[best, 0]), int(pairs[best, 1])


_MIX = np.uint64(0x9E3779B97F4A7C15)


def band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    """One 64-bit key per document for a band: its ``rows`` signature values combined.

    Two documents whose band values are equal always get equal keys; distinct values collide
    with probability ~2^-64, and every candidate pair is verified on the signatures anyway.
    """
    cols = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
    key = cols[:, 0].copy()
    with np.errstate(over="ignore"):
        for c in range(1, rows):
            key *= _MIX
            key ^= cols[:, c]
    return key


def all_band_keys(sig, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: every band's key per document."""
    return np.stack([band_keys(sig, band, rows) for band in range(bands)], axis=1)


def candidate_pairs(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(k, 2) pairs of documents sharing a band; each bucket is linked to its first member."""
    return candidate_pairs_from_keys(all_band_keys(sig, bands, rows))


def candidate_pairs_from_keys(keys, threads: int | None = None) -> np.ndarray:
    """(k, 2) pairs (first member of a bucket, other member), sorted and unique, from band keys:
    an (n, bands) matrix, or a sequence of per-band key arrays (read one band at a time).

    Bands are sorted on ``threads`` threads (numpy sorts without the GIL), at most that many
    bands in memory at once; pairs are deduplicated by sorting their int64 codes (numpy's
    hash-based ``unique`` is ~30x slower on millions of codes)."""
    columns = [keys[:, j] for j in range(keys.shape[1])] if isinstance(keys, np.ndarray) else keys
    found, n = [], 0
    for code, size in bounded_map(_bucket_codes, columns, threads or numpy_threads()):
        n = size  # the same for every band
        if len(code):
            found.append(code)
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    code = np.concatenate(found)
    del found
    code.sort()
    code = code[np.r_[True, code[1:] != code[:-1]]]
    return np.stack([code // n, code % n], axis=1)


def _bucket_codes(column) -> tuple[np.ndarray, int]:
    """One band: ``leader * n + member`` for every row that is not the first of its bucket (the
    first in row order, as ``np.unique(return_index=True)`` finds it), and n."""
    column = np.asarray(column)
    n = len(column)
    order = np.argsort(column, kind="stable")  # equal keys keep row order: the leader is first
    ordered = column[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if n else np.zeros(0, bool)
    leader = order[starts][np.cumsum(starts) - 1]
    member = leader != order
    return leader[member].astype(np.int64) * n + order[member], n


def bounded_map(fn, items, threads: int):
    """``fn`` over ``items`` on ``threads`` threads, results in order, at most ``threads`` items
    taken from the iterable ahead of the results (a generator of large arrays stays lazy)."""
    items = iter(items)
    if threads <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending = deque(pool.submit(fn, item) for item in islice(items, threads))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, item) for item in islice(items, 1))
            yield result


def estimated_jaccard(sig, pairs: np.ndarray, segments: int = 1, chunk: int = 32_768) -> np.ndarray:
    """Share of equal signature values per pair; ``sig`` is an array or a row lookup (on disk).
    A signature made of ``segments`` equal parts (one per text compared) gives the least share.
    Positions empty in both (0xFFFFFFFF: an undensified one-permutation sketch) are left out
    (Li, Owen & Zhang 2012); two texts without shingles are equal.
    Large chunks make a row lookup read the store in longer ascending runs. (One thread: on two,
    each thread's freed chunks stayed in its own malloc arena, +150 MB at 1M rows.)"""
    if len(pairs) == 0:
        return np.zeros(0)

    def share(i: int) -> np.ndarray:
        a, b = sig[pairs[i : i + chunk, 0]], sig[pairs[i : i + chunk, 1]]
        both_empty = ((a == EMPTY_BIN) & (b == EMPTY_BIN)).reshape(len(a), segments, -1)
        equal = (a == b).reshape(len(a), segments, -1) & ~both_empty
        counted = both_empty.shape[2] - np.count_nonzero(both_empty, axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(counted > 0, np.count_nonzero(equal, axis=2) / counted, 1.0)
        return share.min(axis=1)

    return np.concatenate([share(i) for i in range(0, len(pairs), chunk)])


def numpy_threads() -> int:
    """Threads for numpy work that releases the GIL: the usable cores, at most 4."""
    return min(4, usable_cores())


def union_find(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of n items given undirected pairs: each item's label is the smallest
    item of its component. Vectorized (hook every pair's labels to their minimum, then pointer
    jumping, until nothing changes): no Python loop over pairs or items."""
    labels = np.arange(n)
    if len(pairs) == 0:
        return labels
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        la, lb = labels[a], labels[b]
        low = np.minimum(la, lb)
        hooked = labels.copy()
        np.minimum.at(hooked, la, low)
        np.minimum.at(hooked, lb, low)
        while True:  # pointer jumping: every item points at its root
            jumped = hooked[hooked]
            if np.array_equal(jumped, hooked):
                break
            hooked = jumped
        if np.array_equal(hooked, labels):
            return labels
        labels = hooked


def split_loose_members(
    sig: np.ndarray, labels: np.ndarray, min_jaccard: float, segments: int = 1
) -> np.ndarray:
    """Detach members whose estimated Jaccard with their cluster's root is below min_jaccard.

    Union-find is transitive: A~B and B~C put A and C together even when they share little.
    Checking every member against one representative keeps such chains from merging strangers.
    """
    labels = labels.copy()
    members = np.flatnonzero(labels != np.arange(len(labels)))
    if len(members):
        est = estimated_jaccard(sig, np.stack([members, labels[members]], axis=1), segments)
        loose = members[est < min_jaccard]
        labels[loose] = loose
    return labels

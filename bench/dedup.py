"""Near-dedup speed and quality against datasketch, on a planted-duplicate corpus.

    python -m bench.dedup                 # 100,000 documents (~150 words); baselines on a 10,000-doc sample
    python -m bench.dedup --docs 20000 --baseline-docs 5000

The corpus: random ~150-word documents from a 5,000-word vocabulary; planted near-duplicates
(copies with 1 to 8 word substitutions, insertions or deletions, or two sentences swapped) and
hard negatives (documents sharing a 30-word template with different content). The true word
5-gram Jaccard of every planted pair is computed exactly.

Printed, in one run: docs/s (text to clusters) for our stage, for datasketch MinHash with
per-shingle update() + MinHashLSH, and for MinHash.bulk + MinHashLSH, as ratios to ours; recall on
planted pairs with true Jaccard >= 0.8, precision of merged pairs (true Jaccard >= 0.6), and our
peak memory. The datasketch paths run on a sample of the corpus (they are slow); ours runs on
both the sample and the whole corpus.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.memory import PeakMemory  # noqa: E402
from curation.config import NearDedupConfig  # noqa: E402
from curation.dedup.lsh import union_find  # noqa: E402
from curation.dedup.minhash import oph_signatures  # noqa: E402
from curation.dedup.stages import NearDedupStage  # noqa: E402

THRESHOLD, NUM_PERM, NGRAM = 0.8, 128, 5


def make_corpus(n: int, seed: int = 0):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    weights = [1 / (i + 1) ** 0.8 for i in range(5000)]

    def sentence(k):
        return " ".join(rng.choices(vocab, weights, k=k)) + "."

    docs, planted = [], []
    templates = [sentence(30) for _ in range(50)]
    while len(docs) < n:
        r = rng.random()
        if docs and r < 0.10:  # planted near duplicate
            src = rng.randrange(len(docs))
            words = docs[src].split()
            kind = rng.choice(["sub", "ins", "del", "swap"])
            edits = rng.randint(1, 8)
            for _ in range(edits):
                i = rng.randrange(len(words))
                if kind == "sub":
                    words[i] = rng.choice(vocab)
                elif kind == "ins":
                    words.insert(i, rng.choice(vocab))
                elif kind == "del" and len(words) > 10:
                    del words[i]
            text = " ".join(words)
            if kind == "swap":
                sents = docs[src].split(". ")
                if len(sents) > 2:
                    i = rng.randrange(len(sents) - 1)
                    sents[i], sents[i + 1] = sents[i + 1], sents[i]
                text = ". ".join(sents)
            planted.append((src, len(docs), kind, edits))
            docs.append(text)
        elif r < 0.15:  # hard negative: shared template, different content
            docs.append(rng.choice(templates) + " " + " ".join(sentence(12) for _ in range(10)))
        else:
            docs.append(" ".join(sentence(rng.randint(8, 16)) for _ in range(12)))
    return docs, planted


def shingles(text: str) -> set[str]:
    w = text.split()
    return {" ".join(w[i : i + NGRAM]) for i in range(max(1, len(w) - NGRAM + 1))}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def stage() -> NearDedupStage:
    return NearDedupStage(NearDedupConfig(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM))


def ours(docs: list[str]) -> np.ndarray:
    """The near-dedup stage's own clustering (NearDedupStage.clusters minus the key extraction)."""
    return stage().cluster_signatures(oph_signatures(pl.Series(docs), NUM_PERM, NGRAM))


def scale_chunks(n: int, chunk: int = 50_000, seed: int = 1):
    """~150-word documents, ``chunk`` at a time, 10% of each chunk near-copies of others (1-8
    words substituted), generated in polars (fast enough for millions of documents)."""
    rng = np.random.default_rng(seed)
    vocab = pl.Series([f"w{i}" for i in range(5000)])
    p = 1 / np.arange(1, 5001) ** 0.8
    p /= p.sum()
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        words = rng.choice(5000, size=(m, 150), p=p)
        copies = rng.random(m) < 0.10
        src = rng.integers(0, m, size=m)
        words[copies] = words[src[copies]]
        for _ in range(8):
            hit = copies & (rng.random(m) < 0.6)
            words[hit, rng.integers(0, 150, size=hit.sum())] = rng.integers(0, 5000, size=hit.sum())
        flat = vocab.gather(words.ravel())
        yield (
            pl.DataFrame({"doc": np.repeat(np.arange(m), 150), "w": flat})
            .group_by("doc", maintain_order=True)
            .agg(pl.col("w").str.join(" "))["w"]
        )


def ours_at_scale(n: int) -> dict:
    """The stage's sketch + clustering over n documents that are never all in memory at once:
    each chunk of texts is sketched and dropped; only the signatures are kept."""
    sketch_s = 0.0
    parts = []
    with PeakMemory() as mem:
        for texts in scale_chunks(n):
            t0 = time.perf_counter()
            parts.append(oph_signatures(texts, NUM_PERM, NGRAM))
            sketch_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        sig = np.concatenate(parts)
        del parts
        labels = stage().cluster_signatures(sig)
        cluster_s = time.perf_counter() - t0
    seconds = sketch_s + cluster_s
    return {
        "docs": n,
        "seconds": seconds,
        "sketch_seconds": sketch_s,
        "cluster_seconds": cluster_s,
        "docs_per_s": n / seconds,
        "peak_rss_mb": mem.peak / 2**20,
        "duplicates_removed": int(n - len(np.unique(labels))),
    }


def datasketch_clusters(docs: list[str], bulk: bool) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    sets = [[s.encode() for s in shingles(d)] for d in docs]
    if bulk:
        mhs = MinHash.bulk(sets, num_perm=NUM_PERM)
    else:
        mhs = []
        for s in sets:
            m = MinHash(num_perm=NUM_PERM)
            for x in s:
                m.update(x)
            mhs.append(m)
    pairs = []
    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            if mhs[j].jaccard(m) >= THRESHOLD:  # verified, as ours
                pairs.append((j, i))
        lsh.insert(i, m)
    return union_find(len(docs), np.array(pairs, dtype=np.int64).reshape(-1, 2))


def quality(docs, planted, labels) -> dict:
    n = len(docs)
    true_pairs = [(a, b) for a, b, _, _ in planted if a < n and b < n]
    jac = {(a, b): jaccard(docs[a], docs[b]) for a, b in true_pairs}
    high = [p for p, j in jac.items() if j >= 0.8]
    recall = sum(labels[a] == labels[b] for a, b in high) / max(1, len(high))
    merged, bad = 0, 0
    clusters: dict[int, list[int]] = {}
    for i, c in enumerate(labels.tolist()):
        clusters.setdefault(c, []).append(i)
    for members in clusters.values():
        if len(members) < 2:
            continue
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                merged += 1
                bad += jaccard(docs[members[x]], docs[members[y]]) < 0.6
    return {
        "planted_pairs": len(true_pairs),
        "planted_pairs_jaccard_ge_0.8": len(high),
        "recall_at_0.8": recall,
        "merged_pairs": merged,
        "merged_pairs_jaccard_lt_0.6": bad,
        "precision": (merged - bad) / merged if merged else 1.0,
    }


def timed(fn, *args):
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        out = fn(*args)
        secs = time.perf_counter() - t0
    return out, secs, mem.peak / 2**20


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--baseline-docs", type=int, default=10_000)
    p.add_argument("--scale-docs", type=int, default=1_000_000, help="docs for the memory run (0: skip)")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "dedup.json")
    args = p.parse_args()
    docs, planted = make_corpus(args.docs)
    sample = docs[: args.baseline_docs]
    print(
        f"corpus: {len(docs):,} docs, {sum(len(d.split()) for d in docs) / len(docs):.0f} words each on average, {len(planted):,} planted near-duplicates"
    )
    results = {}
    for name, fn, data in [
        ("ours (sample)", ours, sample),
        ("datasketch update() + MinHashLSH (sample)", lambda d: datasketch_clusters(d, bulk=False), sample),
        (
            "datasketch MinHash.bulk + MinHashLSH (sample)",
            lambda d: datasketch_clusters(d, bulk=True),
            sample,
        ),
        ("ours (whole corpus)", ours, docs),
    ]:
        labels, secs, peak = timed(fn, data)
        q = quality(data, planted, labels)
        results[name] = {
            "docs": len(data),
            "seconds": secs,
            "docs_per_s": len(data) / secs,
            "peak_rss_mb": peak,
            **q,
        }
        print(f"  {name}: {len(data):,} docs in {secs:.2f}s", flush=True)
    base = results["ours (sample)"]["docs_per_s"]
    print(
        f"\n{'':48s}{'docs':>9s}{'docs/s':>10s}{'ours/this':>11s}{'recall@.8':>11s}{'precision':>11s}{'peak MB':>9s}"
    )
    for name, r in results.items():
        ratio = base / r["docs_per_s"] if "datasketch" in name else r["docs_per_s"] / base
        print(
            f"{name:48s}{r['docs']:9,}{r['docs_per_s']:10,.0f}{ratio:10.1f}x{r['recall_at_0.8']:11.3f}{r['precision']:11.4f}{r['peak_rss_mb']:9,.0f}"
        )
    print(
        "(ours/this: our docs/s on the sample divided by that row's; for our whole-corpus row, its docs/s over ours on the sample)"
    )
    if args.scale_docs:
        del docs, sample
        r = ours_at_scale(args.scale_docs)
        results["ours (scale, streamed)"] = r
        print(
            f"\nscale: {r['docs']:,} generated docs sketched in chunks of 50,000 and clustered: "
            f"{r['seconds']:.1f}s ({r['docs_per_s']:,.0f} docs/s; sketch {r['sketch_seconds']:.1f}s, "
            f"cluster {r['cluster_seconds']:.1f}s), {r['duplicates_removed']:,} near-duplicates removed, "
            f"peak RSS {r['peak_rss_mb']:,.0f} MB (goal: under 2,048 MB)"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

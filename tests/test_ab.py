"""The raw-vs-curated A/B benchmark's machinery, end to end on a tiny model (plumbing, not numbers)."""

import json

import pytest

pytest.importorskip("trl", reason="the A/B benchmark trains: needs the 'train' extra")

from bench import ab  # noqa: E402
from curation.config import load_config  # noqa: E402
from tests.conftest import ROOT  # noqa: E402


def sample_sources() -> list[dict]:
    cfg = load_config(ROOT / "data" / "sample.yaml")
    return [
        s.model_dump(exclude_none=True, exclude_defaults=True) | {"name": s.name, "path": s.path}
        for s in cfg.sources
    ]


def test_defects_are_injected_at_the_stated_rates():
    from curation.schema import records_table

    convs = [
        [
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": f"A full answer number {i}. It ends well."},
        ]
        for i in range(4000)
    ]
    rows, counts = ab.inject_defects(records_table(convs), seed=1)
    for name, rate in ab.DEFECTS.items():
        assert abs(counts[name] / 4000 - rate) < 0.015, name
    assert counts["exact_copies"] > 0 and counts["near_copies"] > 0
    assert len(rows) == 4000 + counts["exact_copies"] + counts["near_copies"]
    again, _ = ab.inject_defects(records_table(convs), seed=1)
    assert again == rows  # seeded


def test_ab_end_to_end_on_a_tiny_model(tiny_model_dir, tiny_tokenizer_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the trainer's pages go to ./reports/
    settings = ab.Settings(
        train_tokens=1500,
        eval_rows=8,
        gen_prompts=4,
        safe_prompts=2,
        max_new_tokens=8,
        max_length_cap=128,
        model=str(tiny_model_dir),
        tokenizer=tiny_tokenizer_dir,
        sources=sample_sources(),
        base_dir=ROOT / "data",
        out=tmp_path / "ab",
    )
    results = ab.run(settings)
    # The held-out rows never reach either arm: not by id, and not by prompt.
    held = [
        json.loads(line)["messages"] for line in (tmp_path / "ab" / "held_out.jsonl").read_text().splitlines()
    ]
    assert len(held) == 8
    raw_prompts = {
        json.loads(line)["messages"][0]["content"]
        for line in (tmp_path / "ab" / "raw.jsonl").read_text().splitlines()
    }
    assert not {m[0]["content"] for m in held} & raw_prompts
    assert results["split"]["removed_from_pool"] >= 8
    # Both arms trained on the same budget of assistant tokens (overshot by at most one row).
    import polars as pl

    budget = results["budget_trained_tokens"]
    for arm, folder in (("A_raw", "raw"), ("B_curated", "curated")):
        longest = pl.read_parquet(tmp_path / "ab" / folder / "train-*.parquet")["completion_tokens"].max()
        assert budget <= results["arms"][arm]["trained_tokens"] < budget + longest
    # Curation removed injected defects; the raw arm kept them.
    removed = results["curation_removed_by_defect"]
    assert "looping" in removed and "exact_copies" in removed
    for row in ("base", "A_raw", "B_curated"):
        assert set(results["table"][row]) >= {"loss", "degenerate", "refusal_xstest_safe", "mean_words"}
        assert results["table"][row]["loss"] > 0
    assert len(results["answers"]["B_curated"]) == len(results["prompts"])
    assert "B has lower held-out loss than A" in ab.format_table(results)
    page = ab.write_page(results, tmp_path / "page" / "index.html")
    assert "A: raw" in page.read_text()


def test_scoring_flags_loops_cut_answers_and_refusals():
    loop = "The answer is four. " * 20
    scores = ab.score_answers(
        ["q1", "q2", "q3", "q4", "q5"],
        [
            loop,
            "Paris is the capital of France, and it is also the largest city in the",
            "I'm sorry, but I can't help with that.",
            "Paris.",
            "It is a long answer that was cut by the token limit and so",
        ],
        [True, True, True, True, False],
    )
    assert scores["looping"][0] and scores["degenerate"][0]
    assert scores["stopped_mid_sentence"][1] and scores["degenerate"][1]
    assert scores["refusal"][2] and not scores["degenerate"][2]
    assert scores["degenerate"][3] is False
    assert scores["hit_max_new_tokens"][4] and not scores["degenerate"][4]  # the cap, not the model

"""Mixing (exact counts, caps, warnings, determinism, token targets) and the validation split."""

import numpy as np
import pyarrow as pa
import pytest

from curation.config import MixConfig, SplitConfig, config_from_dict
from curation.mix.mixing import mix, split_validation
from tests.helpers import batch_of, chat


def pool(sizes: dict[str, int], tokens: int = 10) -> pa.Table:
    parts = []
    for src, n in sizes.items():
        t = batch_of([chat(f"{src} question {i}", f"answer {i}") for i in range(n)], source=src)
        parts.append(
            t.append_column("completion_tokens", pa.array([tokens + i % 3 for i in range(n)], pa.int64()))
        )
    return pa.concat_tables(parts)


def by_source(table: pa.Table) -> dict[str, int]:
    srcs, counts = np.unique(np.asarray(table["source"].to_pylist()), return_counts=True)
    return dict(zip(srcs.tolist(), counts.tolist(), strict=True))


def test_no_targets_keeps_every_row_once():
    t = pool({"a": 7, "b": 3})
    r = mix(t, MixConfig())
    assert r.table.num_rows == 10 and r.dropped.num_rows == 0
    assert r.table["id"].to_pylist() == t["id"].to_pylist()
    assert set(r.table["mix_copy"].to_pylist()) == {0}


def test_exact_counts_downsample_without_replacement():
    t = pool({"a": 100, "b": 50})
    r = mix(t, MixConfig(targets={"a": 0.5, "b": 0.5}))  # the largest mix without repeats: 50 + 50
    assert by_source(r.table) == {"a": 50, "b": 50}
    assert len(set(r.table["id"].to_pylist())) == 100  # no row twice
    assert r.dropped.num_rows == 50
    assert set(r.dropped["reject_reason"].to_pylist()) == {"mix_downsampled:a"}
    r = mix(t, MixConfig(targets={"a": 3, "b": 1}, total_rows=80))  # weights are normalized
    assert by_source(r.table) == {"a": 60, "b": 20}
    assert r.report["groups"]["a"]["realized_share"] == pytest.approx(0.75)


def test_upsampling_whole_repeats_plus_seeded_remainder():
    t = pool({"a": 10, "b": 10})
    r = mix(t, MixConfig(targets={"a": 0.5, "b": 0.5}, total_rows=50))
    assert by_source(r.table) == {"a": 25, "b": 25}
    counts = np.unique(
        np.asarray(r.table.filter(pa.compute.equal(r.table["source"], "a"))["id"].to_pylist()),
        return_counts=True,
    )[1]
    assert sorted(counts.tolist()) == [2] * 5 + [3] * 5  # two whole repeats, then 5 of 10 once more
    assert max(r.table["mix_copy"].to_pylist()) == 2


def test_cap_and_warnings_name_the_source(caplog):
    t = pool({"small": 5, "big": 100})
    r = mix(t, MixConfig(targets={"small": 0.5, "big": 0.5}, total_rows=100, max_upsample=2))
    assert by_source(r.table) == {"small": 10, "big": 50}
    assert any("'small' cannot be met" in w and "max_upsample=2" in w for w in r.warnings)
    assert r.report["groups"]["small"]["realized_share"] == pytest.approx(10 / 60)
    r = mix(t, MixConfig(targets={"small": 1, "missing": 1}))
    assert any("'missing' cannot be met: no curated rows" in w for w in r.warnings)
    assert any("'big' has no mix target" in w for w in r.warnings)
    assert set(r.dropped["reject_reason"].to_pylist()) == {"mix_not_in_targets:big"}


def test_deterministic_under_the_seed_and_input_never_mutated():
    t = pool({"a": 40, "b": 40})
    before = t.to_pylist()
    cfg = MixConfig(targets={"a": 0.7, "b": 0.3}, total_rows=50)
    one, two = mix(t, cfg, seed=1), mix(t, cfg, seed=1)
    assert one.table["id"].to_pylist() == two.table["id"].to_pylist()
    assert mix(t, cfg, seed=2).table["id"].to_pylist() != one.table["id"].to_pylist()
    assert t.to_pylist() == before


def test_token_targets():
    t = pool({"a": 50, "b": 50}, tokens=10)  # 10, 11 or 12 tokens a row
    r = mix(t, MixConfig(targets={"a": 0.5, "b": 0.5}, total_tokens=400))
    for g in ("a", "b"):
        got = r.report["groups"][g]["realized"]
        assert 200 <= got < 212  # the budget, overshot by at most one row
    assert r.report["unit"] == "tokens"


def test_mix_config_errors_name_the_key():
    with pytest.raises(Exception, match="total_rows or total_tokens"):
        config_from_dict({"mix": {"targets": {"a": 1}, "total_rows": 5, "total_tokens": 5}})
    with pytest.raises(Exception, match="max_upsample"):
        config_from_dict({"mix": {"max_upsample": 0.5}})


def test_validation_split_keeps_dedup_clusters_whole():
    convs = [chat(f"question {i}", f"answer {i}") for i in range(60)]
    t = batch_of(convs)
    ids = t["id"].to_pylist()
    # Every third row is a member of a cluster of 3 (as if near-duplicates had been kept).
    cluster = [ids[i - i % 3] if i < 30 else None for i in range(60)]
    t = t.append_column("dup_cluster", pa.array(cluster, pa.string()))
    train, val = split_validation(t, SplitConfig(validation=0.25), seed=3)
    assert train.num_rows + val.num_rows == 60
    assert 15 <= val.num_rows <= 17
    train_clusters = {c for c in train["dup_cluster"].to_pylist() if c}
    val_clusters = {c for c in val["dup_cluster"].to_pylist() if c}
    assert not train_clusters & val_clusters
    again = split_validation(t, SplitConfig(validation=0.25), seed=3)[1]
    assert again["id"].to_pylist() == val["id"].to_pylist()
    assert split_validation(t, SplitConfig(validation_rows=5), seed=3)[1].num_rows in (5, 6, 7)

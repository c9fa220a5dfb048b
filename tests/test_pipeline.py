"""End-to-end curate runs: accounting, output layout, loading the shards, CLI and config errors."""

import gzip
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.config import config_from_dict, load_config
from curation.errors import ConfigError, CurationError
from curation.io.files import sha256_file
from curation.run.pipeline import run_curation
from pipelines import curate as cli
from tests.conftest import ROOT


def assert_accounting(result):
    m = result.manifest
    for src, c in m["counts"].items():
        assert c["input"] == c["kept"] + c["rejected"] + c["quarantined"], src
        assert c["input"] == c["rows_read"] + c["expanded"]
        assert sum(c["removed"].values()) == c["rejected"]
    files = {s["file"]: s for s in m["shards"]}
    for split, total in (("train", "kept"), ("rejects", "rejected"), ("quarantine", "quarantined")):
        shards = [f for f in files if f.startswith(split + "-")]
        assert shards, split
        assert sum(pq.read_metadata(result.out / f).num_rows for f in shards) == m["totals"][total]
    for f, s in files.items():
        assert sha256_file(result.out / f) == s["sha256"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    cfg = load_config(ROOT / "data" / "sample.yaml")
    out = tmp_path_factory.mktemp("runs") / "sample"
    return run_curation(cfg, out=out)


def test_bundled_sample_counts_add_up(sample_run):
    assert_accounting(sample_run)
    m = sample_run.manifest
    assert len(m["counts"]) == 5
    assert m["totals"]["input"] >= 600
    # Every defect family in the sample is caught by its stage.
    for stage in ("empty", "truncation", "repetition", "language", "length"):
        removed = m["stages"][stage]["removed"]
        assert sum(n for reasons in removed.values() for n in reasons.values()) > 0, stage
    assert m["totals"]["quarantined"] >= 5
    assert m["tokenizer"]["name"] == "SmolLM2-135M-Instruct"
    assert all(len(v[0]["sha256"]) == 64 for v in m["inputs"].values())


def test_shards_have_the_canonical_columns_and_annotations(sample_run):
    kept = pl.read_parquet(sample_run.out / "train-*.parquet")
    for col in (
        "id",
        "source",
        "messages",
        "meta",
        "n_turns",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "lang",
        "lang_score",
        "is_truncated",
        "is_refusal",
    ):
        assert col in kept.columns, col
    assert kept["is_refusal"].sum() > 0  # refusals are tagged, not dropped
    # Kept rows are not truncated, but for the kinds tagged only (a run-on sentence).
    assert set(kept.filter(pl.col("is_truncated"))["truncation"].unique()) <= {"run_on"}
    assert set(kept["lang"].unique()) <= {"en", "und"}
    rejects = pl.read_parquet(sample_run.out / "rejects-*.parquet")
    assert rejects["reject_stage"].null_count() == 0 and rejects["reject_reason"].null_count() == 0
    assert "duplicate_of" in rejects.columns
    quarantine = pl.read_parquet(sample_run.out / "quarantine-*.parquet")
    assert set(quarantine.columns) == {"source", "file", "row", "field", "reason", "raw"}
    assert (quarantine["row"] > 0).all()


def test_shards_load_with_datasets(sample_run):
    import datasets

    files = sorted(str(p) for p in sample_run.out.glob("train-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train")
    assert len(ds) == sample_run.manifest["totals"]["kept"]
    first = ds[0]["messages"]
    assert first[-1]["role"] == "assistant" and isinstance(first[-1]["content"], str)


def test_same_input_same_output(sample_run, tmp_path):
    again = run_curation(load_config(ROOT / "data" / "sample.yaml"), out=tmp_path / "again")
    assert again.kept["id"].to_pylist() == sample_run.kept["id"].to_pylist()
    assert again.rejected["reject_reason"].to_pylist() == sample_run.rejected["reject_reason"].to_pylist()


def broken_files(folder: Path) -> Path:
    folder.mkdir()
    (folder / "cut.json").write_text('[{"instruction": "a", "output": "b"}, {"instruction": "c"')
    (folder / "mixed.jsonl").write_bytes(
        b'{"instruction": "Name a fruit.", "output": "An apple is a fruit."}\n'
        b"not json at all\n"
        b'{"instruction": "x", "output": 3}\n'
        b'{"instruction": "caf\xe9", "output": "x"}\n'
        b'{"instruction": "Name a colour.", "output": ""}\n'
    )
    data = gzip.compress(b'{"prompt": "hi", "completion": "Hello there, nice to meet you."}\n' * 3000)
    (folder / "cut.jsonl.gz").write_bytes(data[: len(data) // 3])
    (folder / "empty.jsonl").write_text("")
    (folder / "odd.csv").write_text(
        'prompt,completion\n"a","b","c"\n"Say hi.","Hi there, nice to meet you."\n'
    )
    pq.write_table(
        pa.table({"conversations": [[{"from": "human", "value": "Hi"}], None]}), folder / "bad.parquet"
    )
    (folder / "noise.jsonl").write_bytes(bytes(range(256)) * 4)
    return folder


def test_broken_files_never_crash_and_counts_add_up(tmp_path, tiny_tokenizer_dir):
    folder = broken_files(tmp_path / "broken")
    sources = [{"name": p.stem.replace(".", "_"), "path": str(p)} for p in sorted(folder.iterdir())]
    cfg = config_from_dict({"sources": sources, "stages": {"length": {"tokenizer": tiny_tokenizer_dir}}})
    result = run_curation(cfg, out=tmp_path / "out")
    assert_accounting(result)
    c = result.manifest["counts"]
    assert c["mixed"]["quarantined"] == 3 and c["mixed"]["kept"] == 1 and c["mixed"]["rejected"] == 1
    assert c["cut"]["quarantined"] == 1
    assert c["empty"]["input"] == 0
    assert c["odd"]["quarantined"] == 1
    assert c["bad"]["quarantined"] == 2
    assert c["noise"]["kept"] == 0 and c["noise"]["quarantined"] >= 1
    assert c["cut_jsonl"]["kept"] > 0 and c["cut_jsonl"]["quarantined"] == 1


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"stages\.length\.max_lenght: unknown key"):
        config_from_dict({"stages": {"length": {"max_lenght": 10}}})
    with pytest.raises(ConfigError, match=r"sources\.0\.format"):
        config_from_dict({"sources": [{"name": "a", "path": "x", "format": "yaml"}]})
    bad = tmp_path / "c.yaml"
    bad.write_text("sources: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_non_empty_foreign_folder_is_not_overwritten(tmp_path, tiny_tokenizer_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"instruction": "Hi", "output": "Hello there."}) + "\n")
    cfg = config_from_dict(
        {
            "sources": [{"name": "d", "path": str(src)}],
            "stages": {"length": {"tokenizer": tiny_tokenizer_dir}},
        }
    )
    with pytest.raises(CurationError, match="--overwrite"):
        run_curation(cfg, out=out)
    run_curation(cfg, out=out, overwrite=True)
    assert (out / "precious.txt").exists() and (out / "manifest.json").exists()


def test_cli_sources_without_config(tmp_path, capsys, tiny_tokenizer_dir):
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps({"instruction": "Name a planet.", "output": "Mars is a planet."}) + "\n")
    b = tmp_path / "b.json"
    b.write_text(
        json.dumps(
            [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}]
        )
    )
    rc = cli.main(
        [
            "--source",
            f"a={a}",
            "--source",
            f"b={b}",
            "--out",
            str(tmp_path / "o"),
            "--tokenizer",
            tiny_tokenizer_dir,
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "TOTAL" in out and "quarantined" in out
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["totals"]["kept"] == 2


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    rc = cli.main(["--source", f"x={tmp_path / 'missing.jsonl'}", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err and "missing.jsonl" in err
    rc = cli.main(["--source", "nonsense"])
    assert rc == 2 and "NAME=PATH" in capsys.readouterr().err


def test_strict_mode_from_cli(tmp_path, capsys, tiny_tokenizer_dir):
    a = tmp_path / "a.jsonl"
    a.write_text('{"instruction": "Hi", "output": "Hello."}\n{"instruction": "Hi"}\n')
    rc = cli.main(
        ["--source", f"a={a}", "--strict", "--out", str(tmp_path / "o"), "--tokenizer", tiny_tokenizer_dir]
    )
    assert rc == 2 and "row 2: field output: missing field" in capsys.readouterr().err


def test_a_large_run_stages_lz4_compressed_files_with_the_same_result(sample_run, tmp_path, monkeypatch):
    from curation.run import pipeline, staging

    monkeypatch.setattr(pipeline, "LZ4_FROM_ROWS", 0)  # the sample counts as large
    used = []
    write = staging.write_staged
    monkeypatch.setattr(staging, "write_staged", lambda t, p, c=None: used.append(c) or write(t, p, c))
    large = run_curation(load_config(ROOT / "data" / "sample.yaml"), out=tmp_path / "large")
    assert used and set(used) == {"lz4"}
    assert large.kept["id"].to_pylist() == sample_run.kept["id"].to_pylist()
    assert large.rejected["reject_reason"].to_pylist() == sample_run.rejected["reject_reason"].to_pylist()
    assert large.manifest["counts"] == sample_run.manifest["counts"]


@pytest.mark.parametrize("dedicated_reader", [False, True])
def test_workers_give_the_same_result(sample_run, tmp_path, monkeypatch, dedicated_reader):
    from curation.run import engine, pipeline

    monkeypatch.setattr(engine, "MIN_ROWS_PER_WORKER", 100)
    # A large input gets a reader of its own: N worker processes, not N - 1.
    monkeypatch.setattr(pipeline, "DEDICATED_READER_ROWS", 0 if dedicated_reader else 10**9)
    cfg = load_config(ROOT / "data" / "sample.yaml")
    cfg.batch_size = 128
    parallel = run_curation(cfg, out=tmp_path / "parallel", workers=2)
    assert parallel.manifest["engine"]["workers"] == 2
    assert parallel.manifest["engine"]["worker_processes"] == (2 if dedicated_reader else 1)
    assert parallel.kept["id"].to_pylist() == sample_run.kept["id"].to_pylist()
    assert parallel.rejected["id"].to_pylist() == sample_run.rejected["id"].to_pylist()
    assert parallel.rejected["reject_reason"].to_pylist() == sample_run.rejected["reject_reason"].to_pylist()
    assert parallel.manifest["counts"] == sample_run.manifest["counts"]


def test_refusal_share_cap_in_a_run(tmp_path):
    cfg = load_config(ROOT / "data" / "sample.yaml")
    cfg.stages.refusal.max_share = 0.05
    result = run_curation(cfg, out=tmp_path / "capped", workers=1)
    assert_accounting(result)
    removed = result.manifest["stages"]["refusal_cap"]["removed"]
    assert removed["safety"] == {"refusal_share>0.05": removed["safety"]["refusal_share>0.05"]}
    kept = result.kept.to_pandas()
    shares = kept.groupby("source")["is_refusal"].mean()
    assert (shares <= 0.05 + 1e-9).all()


def test_decontamination_in_a_run(tmp_path, tiny_tokenizer_dir):
    raw = ROOT / "data" / "raw"
    cfg = config_from_dict(
        {
            "sources": [
                {"name": "code", "path": str(raw / "code_tasks.csv")},
                {"name": "safety", "path": str(raw / "safety.parquet")},
            ],
            "stages": {
                "length": {"tokenizer": tiny_tokenizer_dir},
                "decontamination": {"eval_sets": [{"name": "heldout", "path": str(raw / "code_tasks.csv")}]},
            },
        }
    )
    result = run_curation(cfg, out=tmp_path / "decon", workers=1)
    assert_accounting(result)
    removed = result.manifest["stages"]["decontamination"]["removed"]
    assert (
        sum(removed["code"].values())
        == result.manifest["counts"]["code"]["input"]
        - result.manifest["counts"]["code"]["removed"]["truncation"]
    )
    assert not removed.get("safety")
    reasons = result.rejected.filter(pa.compute.equal(result.rejected["reject_stage"], "decontamination"))[
        "reject_reason"
    ]
    assert all(r.startswith("contaminated:heldout:") for r in reasons.to_pylist())

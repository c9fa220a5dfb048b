"""Reliability: hostile input, wrong types, crashes mid-run and resume, determinism, safe paths,
and verification. Every hostile case must end in the quarantine (with file, row and reason) or
in a clear error naming the file; never a traceback, a hang, or a lost row."""

import gzip
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation.config import SourceConfig, config_from_dict, load_config
from curation.errors import ConfigError, CurationError, InputError
from curation.io.reader import read_source
from curation.run.pipeline import run_curation
from curation.run.verify import verify_run
from pipelines import verify as verify_cli
from tests.conftest import ROOT

ALPACA = {"instruction": "Name a colour.", "input": "", "output": "Blue is a colour."}
VALID_ROWS = {
    "alpaca": ALPACA,
    "dolly": {"instruction": "Say hi.", "context": "", "response": "Hi there."},
    "sharegpt": {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
    "openai": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
    "prompt_completion": {"prompt": "2+2?", "completion": "4."},
    "transcript": {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello there."},
}
WRONG_VALUES = [123, None, ["x"], {"a": 1}, True, ""]


def jsonl(rows) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def hostile_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what must happen: 'quarantine' some rows, 'clean' (all rows read), or
    'error' (a clear InputError naming the file))."""
    good = [dict(ALPACA, output=f"Colour number {i} is blue.") for i in range(5)]
    deep = {"instruction": "Hi", "output": "Hello.", "extra": json.loads("[" * 400 + "]" * 400)}
    very_deep = "[" * 5000 + "]" * 5000
    gz = gzip.compress(
        jsonl([dict(ALPACA, output=f"Answer {i}: {i * 7919 % 1000003}.") for i in range(3000)])
    )
    cases: dict[str, tuple[bytes, str, str]] = {
        "random_bytes.jsonl": (bytes(range(256)) * 40, "jsonl", "quarantine"),
        "truncated.jsonl.gz": (gz[: len(gz) // 2], "jsonl", "quarantine"),
        "invalid_utf8.jsonl": (
            jsonl(good) + b'{"instruction": "caf\xe9", "output": "x"}\n',
            "jsonl",
            "quarantine",
        ),
        "bom.jsonl": (b"\xef\xbb\xbf" + jsonl(good), "jsonl", "clean"),
        "bom.json": (b"\xef\xbb\xbf" + json.dumps(good).encode(), "json", "clean"),
        "crlf.jsonl": (jsonl(good).replace(b"\n", b"\r\n"), "jsonl", "clean"),
        "lone_cr.jsonl": (jsonl(good).replace(b"\n", b"\r"), "jsonl", "clean"),
        "huge_row.jsonl": (
            jsonl(good[:2])
            + json.dumps(dict(ALPACA, output="x" * (50 * 2**20))).encode()
            + b"\n"
            + jsonl(good[2:]),
            "jsonl",
            "quarantine",
        ),
        "deeply_nested.jsonl": (
            jsonl(good) + very_deep.encode() + b"\n" + jsonl([deep]),
            "jsonl",
            "quarantine",
        ),
        "deeply_nested.json": (
            ("[" + json.dumps(good[0]) + "," + very_deep + "]").encode(),
            "json",
            "quarantine",
        ),
        "null_and_unknown_roles.jsonl": (
            jsonl(
                [
                    {"conversations": [{"from": None, "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
                    {"conversations": [{"from": "robot", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
                    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
                    {"messages": [{"role": None, "content": "x"}]},
                ]
            ),
            "jsonl",
            "quarantine",
        ),
        "empty.jsonl": (b"", "jsonl", "clean"),
        "empty.json": (b"", "json", "clean"),
        "empty.csv": (b"", "csv", "clean"),
        "empty.jsonl.gz": (gzip.compress(b""), "jsonl", "clean"),
        "empty.parquet": (b"", "parquet", "quarantine"),
        "embedded.csv": (
            b'instruction,input,output\n"Write ""two"" lines","","line one\nline two, with a comma"\n'
            b'"Say hi",,"Hi."\r\n',
            "csv",
            "clean",
        ),
        "ragged.csv": (b"instruction,input,output\nonly,two\nSay hi,,Hi.\n", "csv", "quarantine"),
        "unexpected_schema.parquet": (
            parquet_bytes(pa.table({"a": [1, 2], "b": [[1.0], [2.0]]})),
            "parquet",
            "error",
        ),
        "wrong_types.parquet": (
            parquet_bytes(
                pa.table({"instruction": ["Hi", None], "input": ["", ""], "output": ["Hello.", None]})
            ),
            "parquet",
            "quarantine",
        ),
        "cut_array.json": (json.dumps(good).encode()[:-30], "json", "quarantine"),
        "not_an_array.json": (b'"just a string"', "json", "quarantine"),
    }
    out = {}
    for name, (data, _kind, expect) in cases.items():
        path = folder / name
        path.write_bytes(data)
        out[name] = (path, expect)
    return out


def check_read(path: Path, expect: str):
    try:
        r = read_source(SourceConfig(name="s", path=str(path)))
    except InputError as e:
        assert expect == "error", f"{path.name}: {e}"
        assert path.name in str(e)
        return None
    assert expect != "error", f"{path.name}: expected a clear error"
    # Accounting: every input unit is a record or a quarantined row.
    assert r.units == r.records.num_rows + r.quarantine.num_rows, path.name
    q = r.quarantine
    if expect == "quarantine":
        assert q.num_rows >= 1, path.name
    else:
        assert q.num_rows == 0, (path.name, q.to_pylist())
    for row in q.to_pylist():
        assert row["reason"] and row["file"].endswith(path.name)
        assert len(row["raw"]) <= 30_000  # a huge row is not copied whole into the quarantine
    return r


def test_hand_made_hostile_files(tmp_path):
    files = hostile_files(tmp_path)
    results = {name: check_read(path, expect) for name, (path, expect) in files.items()}
    # Spot checks of what was kept and why rows were quarantined.
    assert results["crlf.jsonl"].records.num_rows == 5
    assert results["lone_cr.jsonl"].records.num_rows == 5
    assert results["bom.jsonl"].records.num_rows == 5 and results["bom.json"].records.num_rows == 5
    huge = results["huge_row.jsonl"]
    assert huge.records.num_rows == 5 and "over the limit" in huge.quarantine["reason"][0].as_py()
    assert huge.quarantine["row"][0].as_py() == 3
    assert results["deeply_nested.jsonl"].records.num_rows == 5
    assert results["deeply_nested.json"].records.num_rows == 1
    assert results["cut_array.json"].records.num_rows == 4
    assert results["null_and_unknown_roles.jsonl"].records.num_rows == 1
    assert results["embedded.csv"].records.num_rows == 2
    text = results["embedded.csv"].records["messages"][0].as_py()[1]["content"]
    assert text == "line one\nline two, with a comma"
    assert results["ragged.csv"].records.num_rows == 1
    assert results["wrong_types.parquet"].records.num_rows == 1


@pytest.mark.parametrize("fmt", sorted(VALID_ROWS))
def test_wrong_type_in_every_field_is_quarantined_or_read(tmp_path, fmt):
    """Each field of each format, set to each wrong type: the row is read (when the value is
    harmless, e.g. an empty optional input) or quarantined naming the field; never a crash."""
    row = VALID_ROWS[fmt]
    rows = [row]
    for field in row:
        for value in WRONG_VALUES:
            rows.append({**row, field: value})
        if isinstance(row[field], list):  # wrong types inside the turns too
            for key in row[field][0]:
                for value in WRONG_VALUES:
                    turns = [dict(t) for t in row[field]]
                    turns[0][key] = value
                    rows.append({**row, field: turns})
    path = tmp_path / f"{fmt}.jsonl"
    path.write_bytes(jsonl(rows))
    r = read_source(SourceConfig(name="s", path=str(path), format=fmt))
    assert r.units == len(rows) == r.records.num_rows + r.quarantine.num_rows
    assert r.quarantine.num_rows > 0
    for q in r.quarantine.to_pylist():
        assert q["reason"] and q["row"] >= 2
    for messages in r.records["messages"].to_pylist():
        assert all(
            isinstance(m["content"], str) and m["role"] in ("system", "user", "assistant") for m in messages
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=3000),
    ext=st.sampled_from(["jsonl", "json", "csv", "parquet", "jsonl.gz", "json.gz"]),
)
def test_random_bytes_in_any_file_kind(tmp_path, data, ext):
    path = tmp_path / f"fuzz.{ext}"
    path.write_bytes(gzip.compress(data) if ext.endswith(".gz") else data)
    try:
        r = read_source(SourceConfig(name="s", path=str(path), format="alpaca"))
    except InputError as e:
        assert "fuzz" in str(e)
        return
    assert r.units == r.records.num_rows + r.quarantine.num_rows
    assert all(q["reason"] for q in r.quarantine.to_pylist())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.dictionaries(
            st.sampled_from(
                ["instruction", "input", "output", "messages", "conversations", "prompt", "completion", "x"]
            ),
            json_values,
            max_size=5,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_random_json_rows(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(jsonl(rows))
    try:
        r = read_source(SourceConfig(name="s", path=str(path)))
    except InputError as e:  # the format cannot be told from the fields: a clear error
        assert "rows.jsonl" in str(e) and "format" in str(e)
        return
    assert r.units == r.records.num_rows + r.quarantine.num_rows


def test_a_run_over_every_hostile_file_adds_up_and_the_cli_prints_no_traceback(tmp_path):
    files = hostile_files(tmp_path / "in") if (tmp_path / "in").mkdir() is None else None
    sources = [
        {"name": name.replace(".", "_"), "path": str(path)}
        for name, (path, expect) in files.items()
        if expect != "error"
    ]
    cfg = config_from_dict({"run_name": "hostile", "report": False, "sources": sources})
    result = run_curation(cfg, out=tmp_path / "out", workers=1)
    _, problems = verify_run(result.out)
    assert problems == []
    totals = result.manifest["totals"]
    assert totals["input"] == totals["kept"] + totals["rejected"] + totals["quarantined"]
    assert totals["quarantined"] >= 15

    # The CLI on the same folder: every file as a source, including the unreadable schema.
    def cli_args(names):
        args = [sys.executable, "-m", "pipelines.curate", "--out", str(tmp_path / "cli"), "--no-report"]
        for name in names:
            args += ["--source", f"{name.replace('.', '_')}={files[name][0]}"]
        return args

    proc = subprocess.run(cli_args(files), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2 and "unexpected_schema.parquet" in proc.stderr  # a clear error, named
    args = cli_args([n for n in files if n != "unexpected_schema.parquet"])
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    strict = subprocess.run([*args, "--strict"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert "row " in strict.stderr and ".jsonl" in strict.stderr


# -- crash safety and resume ---------------------------------------------------------------

RUN = """
import sys
from pathlib import Path
from curation.config import load_config
from curation.run.pipeline import run_curation
cfg = load_config(Path("data/sample.yaml"))
cfg.batch_size = 128
cfg.report = False
run_curation(cfg, out=Path(sys.argv[1]), workers=1, resume=len(sys.argv) > 2)
"""
KILL_POINTS = ["map:2", "checkpoint", "exact_dedup", "near_dedup", "shard:1", "manifest"]


def _run(out: Path, crash_at: str | None = None, resume: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("SFT_CURATION_CRASH_AT", None)
    if crash_at:
        env["SFT_CURATION_CRASH_AT"] = crash_at
    args = [sys.executable, "-c", RUN, str(out)] + (["resume"] if resume else [])
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _digest(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    return {s["file"]: s["sha256"] for s in manifest["shards"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "run"
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_run_leaves_nothing_complete_and_resumes_to_the_same_result(tmp_path, uninterrupted, point):
    out = tmp_path / "run"
    killed = _run(out, crash_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # Nothing a reader or the trainer would take for complete.
    assert not (out / "manifest.json").exists()
    manifest, problems = verify_run(out)
    assert manifest is None and "incomplete" in problems[0]
    from training.data import verify_run as trainer_check

    with pytest.raises(CurationError, match="incomplete"):
        trainer_check(out)

    resumed = _run(out, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert verify_run(out)[1] == []
    assert _digest(out) == _digest(uninterrupted)  # same shards, byte for byte
    m = json.loads((out / "manifest.json").read_text())
    # After the checkpoint the map phase is reused; before it the run starts clean.
    assert m["engine"]["resumed"] == (point not in ("map:2",))
    assert m["totals"]["input"] == m["totals"]["kept"] + m["totals"]["rejected"] + m["totals"]["quarantined"]


def test_resume_with_a_changed_config_starts_clean(tmp_path):
    out = tmp_path / "run"
    assert _run(out, crash_at="checkpoint").returncode == -signal.SIGKILL
    cfg = load_config(ROOT / "data" / "sample.yaml")
    cfg.batch_size = 128
    cfg.seed = 7  # changed
    result = run_curation(cfg, out=out, workers=1, resume=True)
    assert result.manifest["engine"]["resumed"] is False
    fresh = run_curation(cfg, out=tmp_path / "fresh", workers=1)
    assert _digest(out) == _digest(fresh.out)


def test_resuming_a_finished_run_does_nothing(uninterrupted):
    before = (uninterrupted / "manifest.json").read_bytes()
    cfg = load_config(ROOT / "data" / "sample.yaml")
    cfg.batch_size = 128
    result = run_curation(cfg, out=uninterrupted, workers=1, resume=True)
    assert (uninterrupted / "manifest.json").read_bytes() == before
    assert result.manifest["totals"]["input"] > 0


def test_same_inputs_give_the_same_bytes(uninterrupted, tmp_path):
    again = tmp_path / "again"
    assert _run(again).returncode == 0
    assert _digest(again) == _digest(uninterrupted)


# -- safe paths and configs ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", ".hidden", "..", ""])
def test_run_names_cannot_escape_the_output_root(name):
    with pytest.raises(ConfigError):
        config_from_dict({"run_name": name})


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text('run_name: !!python/object/apply:os.system ["echo hacked"]\n')
    with pytest.raises(ConfigError):
        load_config(path)


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="stages.lenght"):
        config_from_dict({"stages": {"lenght": {}}})


def test_a_foreign_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    cfg = load_config(ROOT / "data" / "sample.yaml")
    with pytest.raises(CurationError, match="--overwrite"):
        run_curation(cfg, out=out)
    assert (out / "notes.txt").read_text() == "precious"


# -- verification --------------------------------------------------------------------------


def test_verify_passes_a_sound_run_and_names_each_problem(uninterrupted, tmp_path, capsys):
    import shutil

    assert verify_cli.main([str(uninterrupted)]) == 0
    assert "OK" in capsys.readouterr().out

    bad = tmp_path / "bad"
    shutil.copytree(uninterrupted, bad)
    shard = next(bad.glob("rejects-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    (bad / "train-00009-of-00010.parquet").write_bytes(b"stray")
    assert verify_cli.main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert "sha256 differs" in err and "train-00009-of-00010.parquet" in err

    counts = tmp_path / "counts"
    shutil.copytree(uninterrupted, counts)
    m = json.loads((counts / "manifest.json").read_text())
    src = next(iter(m["counts"]))
    m["counts"][src]["kept"] += 1
    (counts / "manifest.json").write_text(json.dumps(m))
    assert verify_cli.main([str(counts)]) == 1
    assert f"source {src!r}" in capsys.readouterr().err

    assert verify_cli.main([str(tmp_path / "nothing")]) == 1

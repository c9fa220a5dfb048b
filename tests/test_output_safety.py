"""The output folder: nothing that this tool did not write is deleted, one run writes a folder at
a time, files are readable as the umask says, and workers do not outlive a killed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from curation.config import config_from_dict, load_config
from curation.errors import CurationError
from curation.run.output import folder_lock, is_ours
from curation.run.pipeline import run_curation
from curation.run.verify import verify_run
from tests.conftest import ROOT


def one_source(tmp_path, tokenizer_dir, **extra):
    src = tmp_path / "d.jsonl"
    rows = [{"instruction": f"Say hi to {n}.", "output": f"Hello there, {n}!"} for n in ("Ann", "Bo", "Cy")]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return config_from_dict(
        {
            "sources": [{"name": "d", "path": str(src)}],
            "stages": {"length": {"tokenizer": tokenizer_dir}},
            **extra,
        }
    )


def test_another_tools_manifest_does_not_make_a_folder_ours(tmp_path, tiny_tokenizer_dir):
    out = tmp_path / "theirs"
    (out / "models").mkdir(parents=True)
    (out / "manifest.json").write_text('{"tool": "something else"}')
    (out / "train-00000-of-00001.parquet").write_bytes(b"their data")
    (out / "notes.txt").write_text("keep")
    cfg = one_source(tmp_path, tiny_tokenizer_dir)
    assert not is_ours(out)
    with pytest.raises(CurationError, match="was not made by this tool; use --overwrite"):
        run_curation(cfg, out=out)
    assert (out / "train-00000-of-00001.parquet").read_bytes() == b"their data"
    # --overwrite writes our files into it and deletes nothing of theirs that has another name.
    run_curation(cfg, out=out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep" and (out / "models").is_dir()
    # A folder this tool made is recognised by its marker, and a new run replaces its output.
    mine = tmp_path / "mine"
    run_curation(cfg, out=mine)
    assert is_ours(mine) and json.loads((mine / ".sft-curation-run").read_text())["tool"] == "sft-curation"
    run_curation(cfg, out=mine)
    assert verify_run(mine)[1] == []


def test_config_out_resolves_against_the_config_folder(tmp_path, tiny_tokenizer_dir, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "d.jsonl").write_text(json.dumps({"instruction": "Hi", "output": "Hello there."}) + "\n")
    (project / "run.yaml").write_text(
        f"run_name: here\nout: curated/here\nsources: [{{name: d, path: d.jsonl}}]\n"
        f"stages: {{length: {{tokenizer: {tiny_tokenizer_dir}}}}}\nreport: false\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_curation(load_config(project / "run.yaml"))
    assert result.out == project / "curated" / "here" and (result.out / "manifest.json").is_file()
    assert not (elsewhere / "curated").exists()


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, tiny_tokenizer_dir):
    out = tmp_path / "busy"
    cfg = one_source(tmp_path, tiny_tokenizer_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pathlib import Path\nfrom curation.run.output import folder_lock\n"
         f"import time\nwith folder_lock(Path({str(out)!r})):\n    print('held', flush=True)\n    time.sleep(60)\n"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CurationError, match=f"in use by process {holder.pid}"):
            run_curation(cfg, out=out)
    finally:
        holder.kill()
        holder.wait()
    run_curation(cfg, out=out)  # free again once the other process is gone
    with folder_lock(out), pytest.raises(CurationError, match="in use by process"):
        run_curation(cfg, out=out)


def test_output_files_follow_the_umask(tmp_path, tiny_tokenizer_dir):
    cfg = one_source(tmp_path, tiny_tokenizer_dir)
    old = os.umask(0o022)
    try:
        out = run_curation(cfg, out=tmp_path / "shared").out
    finally:
        os.umask(old)
    for name in ("manifest.json", "train-00000-of-00001.parquet"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name


WORKER = """
import os, time
from curation.run.forked_workers import ForkedWorkers
workers = ForkedWorkers(1)
time.sleep(0.5)
print(*workers.executor._processes, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_die_with_a_killed_run():
    run = subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in run.stdout.readline().split()]
    assert pids and all(os.path.exists(f"/proc/{p}") for p in pids)
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "a worker outlived its killed run"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie waits for init to reap it: it is dead
    except OSError:
        return False


def _run_dir(tmp_path, tiny_tokenizer_dir):
    return run_curation(one_source(tmp_path, tiny_tokenizer_dir), out=tmp_path / "run").out


def test_verify_stays_inside_the_run_folder_and_checks_the_totals(tmp_path, tiny_tokenizer_dir):
    out = _run_dir(tmp_path, tiny_tokenizer_dir)
    path = out / "manifest.json"
    original = json.loads(path.read_text())

    outside = json.loads(json.dumps(original))
    outside["shards"][0]["file"] = "../../../../etc/hostname"
    path.write_text(json.dumps(outside))
    assert any("not a file of the run folder" in p for p in verify_run(out)[1])

    padded = json.loads(json.dumps(original))
    padded["totals"]["input"] += 5
    path.write_text(json.dumps(padded))
    assert any("total input" in p for p in verify_run(out)[1])

    for bad in ([1, 2], {**original, "shards": "abc"}):
        path.write_text(json.dumps(bad))
        manifest, problems = verify_run(out)
        assert problems and "not a manifest" in problems[0] or "'shards' must be" in problems[0]

    path.write_text(json.dumps(original))
    (out / "notes.txt").write_text("x")
    assert any("notes.txt: a file this tool did not write" in p for p in verify_run(out)[1])


def test_verify_cli_is_one_line_on_a_list_manifest(tmp_path, tiny_tokenizer_dir):
    out = _run_dir(tmp_path, tiny_tokenizer_dir)
    (out / "manifest.json").write_text("[1, 2]")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.verify", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "not a manifest" in proc.stdout + proc.stderr


def _cli(tmp_path, *args, env=None):
    src = tmp_path / "d.jsonl"
    if not src.exists():
        src.write_text(
            "".join(json.dumps({"instruction": f"Q{i}?", "output": f"Answer {i}."}) + "\n" for i in range(50))
        )
    cmd = [sys.executable, "-m", "pipelines.curate", "--source", f"d={src}", "--no-report", *args]
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
        start_new_session=True,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["my run", "mix/v2", "../x"])
def test_a_bad_run_name_on_the_command_line_is_one_line(tmp_path, name):
    proc = _cli(tmp_path, "--run-name", name, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.startswith(f"error: --run-name {name!r}: run names use") and proc.stderr.count("\n") == 1
    )


def test_ctrl_c_says_how_to_go_on(tmp_path):
    out = tmp_path / "o"
    proc = _cli(
        tmp_path, "--out", str(out), "--workers", "2", env={"SFT_CURATION_INTERRUPT_AT": "checkpoint"}
    )
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    assert "interrupted; run the same command again with --resume" in proc.stderr
    resumed = _cli(tmp_path, "--out", str(out), "--workers", "2", "--resume")
    assert resumed.returncode == 0 and verify_run(out)[1] == []


def test_an_unreadable_input_file_is_one_line(tmp_path, monkeypatch, capsys):
    """PermissionError on an input (made here by refusing the open: root reads any file)."""
    import builtins

    from pipelines import curate

    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"instruction": "Q?", "output": "A."}) + "\n")
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(src):
            raise PermissionError(13, "Permission denied", str(src))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    code = curate.main(
        ["--source", f"d={src}", "--out", str(tmp_path / "o"), "--no-report", "--workers", "1"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: ") and "d.jsonl" in err and "Permission denied" in err


def test_sources_worth_a_look_are_warned_about(tmp_path, tiny_tokenizer_dir, capsys):
    from pipelines import curate

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    refusals = tmp_path / "refusals.jsonl"
    refusals.write_text(
        "".join(
            json.dumps(
                {
                    "instruction": f"How do I pick lock number {i}?",
                    "output": "I'm sorry, but I can't help with that.",
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    out = tmp_path / "o"
    code = curate.main(
        ["--source", f"empty={empty}", "--source", f"refusals={refusals}", "--out", str(out),
         "--tokenizer", tiny_tokenizer_dir, "--workers", "1", "--report-dir", str(tmp_path / "report")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: source 'empty' has no rows" in err
    assert "warning: source 'refusals': 100% of its rows that passed the filters are refusals" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["warnings"]) == 2
    assert "has no rows" in (tmp_path / "report" / "index.html").read_text()

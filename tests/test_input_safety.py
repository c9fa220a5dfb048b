"""Hostile inputs: symlink loops in a source folder, UTF-16 files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from curation.io.files import expand_paths
from tests.conftest import ROOT


def test_symlink_loops_are_read_once_and_end(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.jsonl").write_text('{"instruction": "Q?", "output": "A."}\n')
    (data / "sub" / "b.jsonl").write_text('{"instruction": "Q2?", "output": "A2."}\n')
    os.symlink(".", data / "loop")
    os.symlink("..", data / "sub" / "up")
    os.symlink(data / "a.jsonl", data / "sub" / "same_as_a.jsonl")
    for spec in (f"{data}/**/*.jsonl", str(data), f"{data}/*.jsonl"):
        files = expand_paths(spec)
        real = [os.path.realpath(f) for f in files]
        assert len(real) == len(set(real)), spec
        assert {os.path.basename(r) for r in real} <= {"a.jsonl", "b.jsonl"}
    assert len(expand_paths(f"{data}/**/*.jsonl")) == 2
    assert len(expand_paths(f"{data}/**/b.jsonl")) == 1


def test_a_utf16_file_stops_with_one_line(tmp_path):
    src = tmp_path / "utf16.jsonl"
    src.write_bytes(json.dumps({"instruction": "Q?", "output": "A."}).encode("utf-16"))
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.curate", "--source", f"d={src}", "--out", str(tmp_path / "o"), "--no-report"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "utf16.jsonl: file is UTF-16; convert it to UTF-8" in proc.stderr


def test_a_too_deeply_nested_json_element_is_skipped_alone(tmp_path):
    from curation.io.files import iter_json

    deep = "[" * 100_000 + "]" * 100_000
    good = [{"instruction": f"Q{i}?", "output": f"A{i}."} for i in range(3)]
    text = (
        "["
        + json.dumps(good[0])
        + ", "
        + '{"x": '
        + deep
        + "}, "
        + ", ".join(json.dumps(g) for g in good[1:])
        + "]"
    )
    path = tmp_path / "nested.json"
    path.write_text(text)
    rows = list(iter_json(path))
    assert [r.row for r in rows] == [1, 2, 3, 4]
    assert rows[1].value is None and "nested too deeply" in rows[1].error
    assert [r.value for r in rows if r.value is not None] == good


def test_a_chat_template_that_refuses_a_row_rejects_that_row_only(tmp_path, tiny_tokenizer):
    from transformers import PreTrainedTokenizerFast

    from curation.config import config_from_dict
    from curation.run.pipeline import run_curation
    from tests.conftest import CHATML

    strict = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('system messages are not supported by this template') }}{% endif %}{% endfor %}"
        + CHATML
    )
    tok_dir = tmp_path / "tok"
    tok = PreTrainedTokenizerFast.from_pretrained(tiny_tokenizer.name_or_path)
    tok.chat_template = strict
    tok.save_pretrained(tok_dir)
    rows = [
        {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello there."}]},
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "It is sunny today."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Bye?"},
                {"role": "assistant", "content": "Goodbye, friend."},
            ]
        },
    ]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config_from_dict(
        {
            "sources": [{"name": "d", "path": str(src)}],
            "stages": {"length": {"tokenizer": str(tok_dir)}},
            "report": False,
        }
    )
    result = run_curation(cfg, out=tmp_path / "o", workers=1)
    assert result.kept.num_rows == 2
    rejected = result.rejected.to_pylist()
    assert [r["reject_reason"] for r in rejected] == ["chat_template_error"]
    assert rejected[0]["template_error"] == "system messages are not supported by this template"

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.config import SourceConfig
from curation.errors import InputError
from curation.io.reader import read_source

ALPACA = {"instruction": "Name a colour.", "input": "", "output": "Blue."}


def write_jsonl(path, rows, raw_lines=()):
    lines = [json.dumps(r) for r in rows] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def read(path, **kw):
    return read_source(SourceConfig(name="s", path=str(path), **kw))


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet"])
@pytest.mark.parametrize("gz", [False, True])
def test_every_file_kind_optionally_gzipped(tmp_path, kind, gz):
    rows = [dict(ALPACA, output=f"Blue {i}.", extra=i) for i in range(5)]
    path = tmp_path / f"d.{kind}"
    if kind == "jsonl":
        write_jsonl(path, rows)
    elif kind == "json":
        path.write_text(json.dumps(rows))
    elif kind == "csv":
        import csv

        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    if gz:
        data = path.read_bytes()
        path.unlink()
        path = tmp_path / f"d.{kind}.gz"
        path.write_bytes(gzip.compress(data))
    r = read(path)
    assert r.records.num_rows == 5 and r.quarantine.num_rows == 0
    assert r.inputs[0]["format"] == "alpaca"
    msgs = r.records["messages"].to_pylist()
    assert msgs[3] == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue 3."},
    ]
    assert json.loads(r.records["meta"][0].as_py())["extra"] in (0, "0")  # CSV keeps strings


def test_bad_rows_are_quarantined_with_file_row_and_field(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [ALPACA, {"instruction": "x"}, {"instruction": "x", "output": 5}],
        raw_lines=['{"instruction": "cut', "[1, 2]"],
    )
    with open(path, "ab") as f:
        f.write(b'{"instruction": "caf\xe9", "output": "x"}\n')  # latin-1 byte: invalid UTF-8
    r = read(path)
    assert r.records.num_rows == 1
    q = r.quarantine.to_pylist()
    assert [(x["row"], x["field"]) for x in q] == [
        (2, "output"),
        (3, "output"),
        (4, None),
        (5, None),
        (6, None),
    ]
    assert [x["reason"].split(":")[0] for x in q] == [
        "missing field",
        "expected a string, got int",
        "invalid JSON",
        "expected a JSON object, got list",
        "invalid UTF-8",
    ]
    assert all(x["file"].endswith("d.jsonl") for x in q)
    assert '"cut' in q[2]["raw"]
    assert r.units == r.records.num_rows + r.quarantine.num_rows


def test_strict_names_file_row_and_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [ALPACA, {"instruction": "x", "output": None}])
    with pytest.raises(InputError, match=r"d\.jsonl: row 2: field output: missing field"):
        read_source(SourceConfig(name="s", path=str(path)), strict=True)


def test_bom_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(ALPACA).encode() + b"\r\n\r\n" + json.dumps(ALPACA).encode() + b"\r\n"
    )
    r = read(path)
    assert r.records.num_rows == 2 and r.quarantine.num_rows == 0


def test_truncated_gzip_keeps_rows_before_the_cut(tmp_path):
    data = gzip.compress(
        ("\n".join(json.dumps(dict(ALPACA, output=f"{i}.")) for i in range(2000)) + "\n").encode()
    )
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    r = read(path)
    assert 0 < r.records.num_rows < 2000
    assert r.quarantine.num_rows >= 1 and "unreadable" in r.quarantine["reason"][-1].as_py()
    assert r.units == r.records.num_rows + r.quarantine.num_rows


def test_cut_json_array_keeps_its_complete_elements(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([dict(ALPACA, output=f"{i}.") for i in range(3)])[:-20])
    r = read(path)
    # The first two elements are complete; the third is cut: one quarantined row, numbered 3.
    assert r.records.num_rows == 2 and r.quarantine.num_rows == 1
    assert r.quarantine["row"][0].as_py() == 3
    assert r.quarantine["reason"][0].as_py().startswith("invalid JSON from here on")
    assert r.units == 3


def test_csv_with_embedded_newlines_and_quotes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('prompt,completion\n"Write ""hi"" code","print(""hi"")\nprint(2)"\n')
    r = read(path)
    assert r.records["messages"][0].as_py()[1]["content"] == 'print("hi")\nprint(2)'


def test_glob_and_directory(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [ALPACA])
    write_jsonl(tmp_path / "b.jsonl", [ALPACA, ALPACA])
    assert read(tmp_path / "*.jsonl").records.num_rows == 3
    assert len(read(tmp_path).inputs) == 2


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read(tmp_path / "nope.jsonl")


def test_undetectable_format_says_what_to_set(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(InputError, match="set 'format:'"):
        read(path)


def test_explicit_format_and_columns(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a", "sys": "Be kind."}])
    r = read(path, columns={"prompt": "question", "response": "answer", "system": "sys"})
    assert [m["role"] for m in r.records["messages"][0].as_py()] == ["system", "user", "assistant"]
    assert json.loads(r.records["meta"][0].as_py()) == {}


def test_hub_loading_code_path_with_a_local_dataset_folder(tmp_path):
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [ALPACA, dict(ALPACA, output="Red.")])
    r = read_source(SourceConfig(name="hub", hub=str(folder), split="train"))
    assert r.records.num_rows == 2
    assert r.inputs[0]["hub"] == str(folder)


def test_same_content_same_id_across_reads(tmp_path):
    a = read(write_jsonl(tmp_path / "a.jsonl", [ALPACA]))
    b = read(write_jsonl(tmp_path / "b.jsonl", [dict(ALPACA, output="  Blue.  ")]))
    assert a.records["id"][0] == b.records["id"][0]

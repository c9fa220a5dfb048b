"""Raw rows from files: JSONL, JSON arrays, Parquet, CSV, each optionally gzipped.

Every raw row carries its file and 1-based row number (the line number for JSONL, the element
index for JSON arrays, the record number for CSV and Parquet) so that a bad row can be named.
Undecodable bytes never abort a file: text is decoded with ``surrogateescape`` and rows that
contain undecodable bytes are reported as bad rows.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from curation.errors import InputError

FILE_KINDS = ("jsonl", "json", "parquet", "csv")
_GZIP_MAGIC = b"\x1f\x8b"
RAW_PREVIEW_CHARS = 20_000  # raw text kept in the quarantine per bad row


@dataclass
class RawRow:
    file: str
    row: int
    value: dict | None  # the parsed row, or None when it could not be parsed
    raw: str | bytes  # the row's text as read (for the quarantine; bytes are decoded only if needed)
    error: str | None = None
    field: str | None = None


def expand_paths(spec: str, base: Path | None = None) -> list[Path]:
    """A path, a directory (all data files in it) or a glob -> sorted list of files."""
    path = Path(spec).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if any(ch in str(path) for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and file_kind(p, sniff=False) is not None)
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{spec}: no such file or directory")
    if not files:
        raise InputError(f"{spec}: matched no files")
    return files


def file_kind(path: Path, sniff: bool = True) -> str | None:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, kind in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".parquet", "parquet")):
        if name.endswith(ext):
            return kind
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if not sniff:
        return None
    head = _read_head(path).lstrip()
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    return None


def _read_head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as f:
        head = f.read(n)
    if head.startswith(_GZIP_MAGIC):
        try:
            return gzip.GzipFile(fileobj=io.BytesIO(head)).read(n)
        except (OSError, EOFError, zlib.error):
            return b""
    return head


def open_binary(path: Path):
    """Open a file for reading bytes; gzip is detected from the magic bytes, not the name."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    return open(path, "rb")


def _decode(data: bytes) -> tuple[str, bool]:
    """Text of the bytes, and whether they were invalid UTF-8 (then decoded with surrogateescape)."""
    try:
        text, bad = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, bad = data.decode("utf-8", "surrogateescape"), True
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, bad


def _preview(text: str) -> str:
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= RAW_PREVIEW_CHARS else text[:RAW_PREVIEW_CHARS] + "…[cut]"


def iter_jsonl(path: Path) -> Iterator[RawRow]:
    name = str(path)
    with open_binary(path) as f:
        try:
            for lineno, line in enumerate(f, start=1):
                if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                if not line.strip():
                    continue
                line = line.rstrip(b"\r\n")
                try:
                    value = orjson.loads(line)  # orjson also rejects invalid UTF-8
                except orjson.JSONDecodeError as e:
                    text, bad = _decode(line)
                    reason = "invalid UTF-8" if bad else f"invalid JSON: {e}"
                    yield RawRow(name, lineno, None, _preview(text), reason)
                    continue
                if not isinstance(value, dict):
                    kind = type(value).__name__
                    yield RawRow(
                        name, lineno, None, _preview(_decode(line)[0]), f"expected a JSON object, got {kind}"
                    )
                    continue
                yield RawRow(name, lineno, value, line)
        except (OSError, EOFError, zlib.error) as e:
            yield RawRow(
                name, 0, None, "", f"file is unreadable after the rows above (corrupt or cut gzip?): {e}"
            )


def iter_json(path: Path) -> Iterator[RawRow]:
    name = str(path)
    try:
        with open_binary(path) as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        yield RawRow(name, 0, None, "", f"file is unreadable (corrupt or cut gzip?): {e}")
        return
    text, bad = _decode(data)
    if bad:
        yield RawRow(name, 0, None, _preview(text), "invalid UTF-8 in file")
        return
    if not text.strip():
        return
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        # Maybe it is JSON Lines with a .json name.
        if text.lstrip().startswith("{") and "\n" in text.strip():
            yield from iter_jsonl(path)
            return
        yield RawRow(name, 0, None, _preview(text), f"invalid JSON: {e}")
        return
    if isinstance(value, dict):
        # {"data": [...]} style wrappers, or a single row.
        lists = [
            k for k, v in value.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
        ]
        if len(lists) == 1 and len(value) <= 3:
            value = value[lists[0]]
        else:
            value = [value]
    if not isinstance(value, list):
        yield RawRow(
            name, 0, None, _preview(text), f"expected a JSON array of objects, got {type(value).__name__}"
        )
        return
    for i, item in enumerate(value, start=1):
        if isinstance(item, dict):
            yield RawRow(name, i, item, "")
        else:
            raw = orjson.dumps(item).decode()
            yield RawRow(name, i, None, _preview(raw), f"expected a JSON object, got {type(item).__name__}")


def iter_parquet(path: Path, batch_size: int = 8192) -> Iterator[RawRow]:
    name = str(path)
    try:
        with open_binary(path) as f:
            gz = isinstance(f, gzip.GzipFile)
            # A gzipped Parquet file has to be inflated first (Parquet needs random access).
            pf = pq.ParquetFile(io.BytesIO(f.read())) if gz else pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        yield RawRow(name, 0, None, "", f"not a readable Parquet file: {e}")
        return
    n = 0
    try:
        for batch in pf.iter_batches(batch_size=batch_size):
            for item in batch.to_pylist():
                n += 1
                yield RawRow(name, n, item, "")
    except Exception as e:
        yield RawRow(name, n + 1, None, "", f"Parquet read failed after row {n}: {e}")


def iter_csv(path: Path) -> Iterator[RawRow]:
    name = str(path)
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    try:
        f = io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline="")
        with f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return
            for i, record in enumerate(reader, start=1):
                if not record:
                    continue
                raw = delimiter.join(record)
                if any("\udc80" <= ch <= "\udcff" for ch in raw):
                    yield RawRow(name, i, None, _preview(raw), "invalid UTF-8")
                    continue
                if len(record) != len(header):
                    yield RawRow(
                        name, i, None, _preview(raw), f"{len(record)} fields, the header has {len(header)}"
                    )
                    continue
                yield RawRow(name, i, dict(zip(header, record, strict=True)), raw)
    except (OSError, EOFError, zlib.error, csv.Error) as e:
        yield RawRow(name, 0, None, "", f"CSV read failed: {e}")


READERS = {"jsonl": iter_jsonl, "json": iter_json, "parquet": iter_parquet, "csv": iter_csv}


def iter_file(path: Path) -> Iterator[RawRow]:
    kind = file_kind(path)
    if kind is None:
        yield RawRow(str(path), 0, None, "", "unknown file type (expected .jsonl, .json, .parquet or .csv)")
        return
    yield from READERS[kind](path)


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def display_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)

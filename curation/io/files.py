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
import json
import os
import re
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
    """A path, a directory (all data files in it) or a glob -> sorted list of files.

    Directory symlinks are not followed (a link back into the tree, ``loop -> .``, would read
    the same files again and again, or forever) and each real file is read once, however many
    links lead to it.
    """
    path = Path(spec).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if any(ch in str(path) for ch in "*?["):
        files = _glob(path)
    elif path.is_dir():
        files = [p for p in _walk(path) if file_kind(p, sniff=False) is not None]
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{spec}: no such file or directory")
    if not files:
        raise InputError(f"{spec}: matched no files")
    seen, unique = set(), []
    for f in sorted(files):
        real = os.path.realpath(f)
        if real not in seen:
            seen.add(real)
            unique.append(f)
    return unique


def _walk(root: Path) -> list[Path]:
    """Every file under ``root``, without following directory symlinks."""
    return [
        Path(d) / name
        for d, _, names in os.walk(root, followlinks=False)
        for name in names
        if (Path(d) / name).is_file()
    ]


def _glob(pattern: Path) -> list[Path]:
    """``glob`` for patterns with ``**`` too, walking without following directory symlinks."""
    parts = pattern.parts
    fixed = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    if "**" not in parts[fixed:]:
        return [Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file()]
    regex = re.compile(_glob_regex("/".join(parts[fixed:])))
    return [f for f in _walk(root) if regex.fullmatch(f.relative_to(root).as_posix())]


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : end].replace("!", "^", 1) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


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


DEFAULT_MAX_ROW_BYTES = 16 * 2**20  # a row over this is quarantined, never parsed or staged


def _too_large(size: int, limit: int) -> str:
    return f"row is {size:,} bytes, over the limit of {limit:,} (max_row_bytes)"


def _lines(f, limit: int) -> Iterator[tuple[bytes, int]]:
    """(line, size) of a binary stream, split at LF, CRLF and lone CR. A line longer than
    ``limit`` is not held whole: its first ``limit`` bytes come with its full size."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        size = len(line)
        if size > limit and not line.endswith(b"\n"):  # skip the rest of an oversized line
            while True:
                more = f.readline(1 << 20)
                size += len(more)
                if not more or more.endswith(b"\n"):
                    break
            yield line, size
            continue
        body = line.rstrip(b"\r\n")
        if b"\r" in body:  # lone CR line breaks (classic Mac files): JSON text never holds a raw CR
            for piece in body.split(b"\r"):
                yield piece, len(piece)
        else:
            yield body, size


def iter_jsonl(path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[RawRow]:
    name = str(path)
    lineno = 0
    with open_binary(path) as f:
        try:
            for line, size in _lines(f, max_row_bytes):
                lineno += 1
                if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                if size > max_row_bytes:
                    yield RawRow(
                        name, lineno, None, _preview(_decode(line[:4096])[0]), _too_large(size, max_row_bytes)
                    )
                    continue
                if not line.strip():
                    continue
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


def _salvage_array(text: str, name: str) -> Iterator[RawRow]:
    """The complete elements of a JSON array that is cut off or broken, then one bad row for
    the rest, numbered as the element where parsing stopped."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    i = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            if pos >= len(text):
                yield RawRow(name, i + 1, None, "", "JSON array is cut off after the elements above")
            return
        i += 1
        try:
            item, end = decoder.raw_decode(text, pos)
        except RecursionError:  # valid but nested too deeply: that element only, the rest go on
            end = _value_end(text, pos)
            if end is None:
                yield RawRow(name, i, None, _preview(text[pos : pos + 4096]), "invalid JSON from here on")
                return
            yield RawRow(name, i, None, _preview(text[pos:end]), "JSON element nested too deeply")
            pos = end
            continue
        except json.JSONDecodeError as e:
            yield RawRow(
                name, i, None, _preview(text[pos : pos + 4096]), f"invalid JSON from here on: {e.msg}"
            )
            return
        if isinstance(item, dict):
            yield RawRow(name, i, item, "")
        else:
            yield RawRow(
                name, i, None, _preview(text[pos:end]), f"expected a JSON object, got {type(item).__name__}"
            )
        pos = end


def _value_end(text: str, pos: int) -> int | None:
    """The end of the array or object that starts at ``pos`` (brackets counted outside strings)."""
    depth, i, n = 0, pos, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def iter_json(path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[RawRow]:
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
            yield from iter_jsonl(path, max_row_bytes)
            return
        if text.lstrip().startswith("["):  # keep the complete elements of a cut or broken array
            yield from _salvage_array(text, name)
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
    check_size = len(data) > max_row_bytes  # a smaller file cannot hold an oversized row
    for i, item in enumerate(value, start=1):
        if isinstance(item, dict):
            size = len(orjson.dumps(item, default=str)) if check_size else 0
            if size > max_row_bytes:
                yield RawRow(name, i, None, "", _too_large(size, max_row_bytes))
                continue
            yield RawRow(name, i, item, "")
        else:
            raw = orjson.dumps(item).decode()
            yield RawRow(name, i, None, _preview(raw), f"expected a JSON object, got {type(item).__name__}")


def iter_parquet(
    path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, batch_size: int = 8192
) -> Iterator[RawRow]:
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
        check_size = path.stat().st_size > max_row_bytes // 8  # compressed: a small file may inflate
        for batch in pf.iter_batches(batch_size=batch_size):
            sizes = _row_bytes(batch) if check_size else None
            for j, item in enumerate(batch.to_pylist()):
                n += 1
                if sizes is not None and sizes[j] > max_row_bytes:
                    yield RawRow(name, n, None, "", _too_large(int(sizes[j]), max_row_bytes))
                    continue
                yield RawRow(name, n, item, "")
    except Exception as e:
        yield RawRow(name, n + 1, None, "", f"Parquet read failed after row {n}: {e}")


def _row_bytes(batch) -> list[int]:
    """Bytes of each row's string and binary values (nested values counted through JSON)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = [0] * batch.num_rows
    for column in batch.columns:
        if (
            pa.types.is_string(column.type)
            or pa.types.is_binary(column.type)
            or pa.types.is_large_string(column.type)
        ):
            lengths = pc.fill_null(pc.binary_length(column), 0).to_pylist()
        elif pa.types.is_nested(column.type):
            lengths = [len(orjson.dumps(v, default=str)) for v in column.to_pylist()]
        else:
            continue
        total = [a + b for a, b in zip(total, lengths, strict=True)]
    return total


def iter_csv(path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[RawRow]:
    name = str(path)
    csv.field_size_limit(max(max_row_bytes, 131072))  # a longer field stops the file with a clear error
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
                if len(raw) > max_row_bytes:
                    yield RawRow(name, i, None, _preview(raw[:4096]), _too_large(len(raw), max_row_bytes))
                    continue
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
        where = f"after record {reader.line_num}" if "reader" in locals() else "at its start"
        yield RawRow(name, 0, None, "", f"CSV read failed {where} (rows after it are not read): {e}")


READERS = {"jsonl": iter_jsonl, "json": iter_json, "parquet": iter_parquet, "csv": iter_csv}


def iter_file(path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[RawRow]:
    try:
        kind = file_kind(path)
    except OSError as e:
        yield RawRow(str(path), 0, None, "", f"cannot read the file: {e}")
        return
    if kind is None:
        yield RawRow(str(path), 0, None, "", "unknown file type (expected .jsonl, .json, .parquet or .csv)")
        return
    if kind != "parquet":
        head = _read_head(path, 4)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 (or UTF-32 LE) byte-order mark
            raise InputError(
                f"{display_path(path)}: file is UTF-16; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"
            )
    yield from READERS[kind](path, max_row_bytes)


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

"""Read one configured source into canonical records plus a quarantine of rows that failed."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa

from curation.config import SourceConfig
from curation.errors import InputError, RowError
from curation.io.files import (
    DEFAULT_MAX_ROW_BYTES,
    RawRow,
    display_path,
    expand_paths,
    iter_file,
    sha256_file,
)
from curation.io.formats import FORMATS, ColumnMapping, detect_format, transcript
from curation.run.progress import progress_bar
from curation.schema import QUARANTINE_SCHEMA, RECORD_SCHEMA, check_messages, conversation_id

log = logging.getLogger(__name__)

DETECT_SAMPLE = 200


@dataclass
class SourceRead:
    """What reading one source produced, with the counts the accounting identity needs."""

    name: str
    records: pa.Table
    quarantine: pa.Table
    raw_rows: int = 0  # rows (or unreadable files) seen in the input
    expanded: int = 0  # extra conversations from rows that hold several (self-instruct instances)
    inputs: list[dict] = field(default_factory=list)  # {path, sha256, rows, format}

    @property
    def units(self) -> int:
        """Input units: raw rows plus expansions = kept + rejected + quarantined at the end."""
        return self.raw_rows + self.expanded


class _Converter:
    def __init__(self, source: SourceConfig, fmt: str):
        self.fmt = fmt
        if fmt == "columns":
            mapping = ColumnMapping(source.columns.prompt, source.columns.response, source.columns.system)
            self.convert, self.fields = mapping, set(mapping.fields)
        elif fmt == "transcript":
            tf = source.transcript_field
            self.convert = (lambda row: transcript(row, tf)) if tf else transcript
            self.fields = {tf} if tf else None  # None: resolved per row
        else:
            self.convert, self.fields = FORMATS[fmt].convert, set(FORMATS[fmt].fields)

    def used_fields(self, row: dict) -> set[str]:
        if self.fields is not None:
            return self.fields
        return {next((f for f in ("chosen", "text", "transcript") if f in row), "chosen")}


def _meta(row: dict, used: set[str]) -> str:
    rest = {k: v for k, v in row.items() if k not in used}
    try:
        return orjson.dumps(rest, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError) as e:  # e.g. nested deeper than orjson writes
        field = next(iter(rest), None)
        raise RowError(field, f"other fields cannot be kept in meta: {e}") from None


def _raw_text(r: RawRow) -> str:
    if isinstance(r.raw, bytes):
        return r.raw.decode("utf-8", "replace")
    if r.raw:
        return r.raw
    if r.value is not None:
        return orjson.dumps(r.value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return ""


def _hub_rows(source: SourceConfig) -> Iterator[RawRow]:
    import datasets  # heavy import: only when a hub source is configured

    try:
        ds = datasets.load_dataset(source.hub, source.hub_config, split=source.split)
    except Exception as e:  # datasets raises many types (network, missing config, ...)
        raise InputError(f"source {source.name!r}: cannot load hub dataset {source.hub!r}: {e}") from None
    name = f"hub:{source.hub}" + (f"/{source.hub_config}" if source.hub_config else "") + f"[{source.split}]"
    for i, row in enumerate(ds, start=1):
        yield RawRow(name, i, row, "")


def _records_table(name: str, ids: list, messages: list, metas: list) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "source": pa.array([name] * len(ids), pa.string()),
            "messages": pa.array(messages, RECORD_SCHEMA.field("messages").type),
            "meta": pa.array(metas, pa.string()),
        },
        schema=RECORD_SCHEMA,
    )


def read_source(
    source: SourceConfig,
    base_dir: Path | None = None,
    strict: bool = False,
    on_records=None,
    chunk_rows: int = 16384,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
) -> SourceRead:
    """Read and normalize one source.

    With ``on_records``, normalized records are handed over in chunks of about ``chunk_rows`` as
    they are read (so that the stages can start before the source is finished) and
    ``result.records`` stays empty; without it, they are all in ``result.records``.
    """
    ids, messages, metas = [], [], []
    quarantine: list[dict] = []
    result = SourceRead(source.name, pa.table({}), pa.table({}))
    chunks: list[pa.Table] = []

    def flush() -> None:
        if not ids:
            return
        table = _records_table(source.name, ids, messages, metas)
        ids.clear()
        messages.clear()
        metas.clear()
        if on_records is None:
            chunks.append(table)
        else:
            on_records(table)

    def maybe_flush() -> None:
        if len(ids) >= chunk_rows:
            flush()

    def bad(r: RawRow, reason: str, fld: str | None) -> None:
        file = r.file if r.file.startswith("hub:") else display_path(Path(r.file))
        if strict:
            where = f"{file}: row {r.row}" + (f": field {fld}" if fld else "")
            raise InputError(f"source {source.name!r}: {where}: {reason}")
        quarantine.append(
            {
                "source": source.name,
                "file": file,
                "row": r.row,
                "field": fld,
                "reason": reason,
                "raw": _raw_text(r),
            }
        )

    if source.hub is not None:
        streams = [(source.hub, _hub_rows(source))]
    else:
        files = expand_paths(source.path, base_dir)
        streams = [(p, iter_file(p, max_row_bytes)) for p in files]

    bar = progress_bar(desc=f"read {source.name}", unit=" rows", disable=None, leave=False)
    for origin, rows in streams:
        before = result.raw_rows
        fmt_used = _consume(source, origin, rows, result, ids, messages, metas, bad, bar, maybe_flush)
        entry = {"rows": result.raw_rows - before, "format": fmt_used}
        if isinstance(origin, Path):
            entry = {"path": display_path(origin), "sha256": sha256_file(origin), **entry}
        else:
            entry = {"hub": origin, "split": source.split, **entry}
        result.inputs.append(entry)
    bar.close()

    flush()
    result.records = pa.concat_tables(chunks) if chunks else RECORD_SCHEMA.empty_table()
    result.quarantine = pa.Table.from_pylist(quarantine, schema=QUARANTINE_SCHEMA)
    log.info(
        "source %s: %d rows read, %d conversations, %d quarantined",
        source.name,
        result.raw_rows,
        result.units - len(quarantine),
        len(quarantine),
    )
    return result


def _consume(
    source, origin, rows: Iterable[RawRow], result, ids, messages, metas, bad, bar, maybe_flush
) -> str | None:
    """Normalize one file's (or hub split's) rows; the format is detected from its first rows."""
    fmt = None if source.format == "auto" else source.format
    pending: list[RawRow] = []
    converter = None

    def handle(r: RawRow) -> None:
        result.raw_rows += 1
        bar.update(1)
        if r.value is None:
            bad(r, r.error or "unreadable row", r.field)
            return
        try:
            convs = converter.convert(r.value)
            for conv in convs:
                check_messages(conv)
            meta = _meta(r.value, converter.used_fields(r.value))
        except RowError as e:
            bad(r, e.reason, e.field)
            return
        result.expanded += len(convs) - 1
        for conv in convs:
            ids.append(conversation_id(conv))
            messages.append(conv)
            metas.append(meta)
        maybe_flush()

    for r in rows:
        if converter is None:
            pending.append(r)
            if fmt is None and len(pending) < DETECT_SAMPLE:
                continue
            fmt = fmt or _detect(source, origin, pending)
            converter = _Converter(source, fmt)
            for p in pending:
                handle(p)
            pending = []
        else:
            handle(r)
    if converter is None and pending:
        fmt = fmt or _detect(source, origin, pending)
        if fmt is None:  # nothing parseable at all: every row is a bad row
            for p in pending:
                result.raw_rows += 1
                bar.update(1)
                bad(p, p.error or "unreadable row", p.field)
            return None
        converter = _Converter(source, fmt)
        for p in pending:
            handle(p)
    return fmt


def _detect(source: SourceConfig, origin, rows: list[RawRow]) -> str | None:
    values = [r.value for r in rows if r.value is not None]
    if not values:
        return None
    fmt = detect_format(values)
    if fmt is None:
        keys = sorted({k for v in values[:20] for k in v})
        where = display_path(origin) if isinstance(origin, Path) else origin
        raise InputError(
            f"source {source.name!r}: {where}: cannot tell the format from the fields {keys}; "
            f"set 'format:' (one of {', '.join(FORMATS)}) or a 'columns:' mapping"
        )
    log.debug("source %s: %s detected as %s", source.name, origin, fmt)
    return fmt

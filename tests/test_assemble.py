"""Shard layout: pieces cut into bounded shards, in order, every row exactly once."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curation.errors import AccountingError
from curation.run.assemble import Piece, shard_tasks, write_shards_locally

SCHEMA = pa.schema([pa.field("source", pa.string()), pa.field("x", pa.int64())])


@given(st.lists(st.integers(0, 40), max_size=12), st.integers(1, 25))
def test_pieces_are_cut_into_bounded_shards_in_order(sizes, max_rows):
    pieces = [Piece("table", n, table=None) for n in sizes]
    tasks = shard_tasks(Path("."), "train", pieces, max_rows, "zstd", SCHEMA)
    total = sum(sizes)
    assert len(tasks) == max(1, -(-total // max_rows))
    assert all(t.rows <= max_rows for t in tasks)
    assert all(t.rows == max_rows for t in tasks[:-1])  # only the last shard is short
    assert [t.name for t in tasks] == [
        f"train-{k:05d}-of-{len(tasks):05d}.parquet" for k in range(len(tasks))
    ]
    # Concatenating the parts gives every piece's rows once, in order.
    covered = [(id(p), i) for t in tasks for p, a, b in t.parts for i in range(a, b)]
    assert covered == [(id(p), i) for p in pieces for i in range(p.rows)]


def test_shards_hold_the_pieces_rows_and_count_sources(tmp_path):
    tables = [
        pa.table({"source": ["a"] * n + ["b"] * n, "x": list(range(2 * n))}, schema=SCHEMA)
        for n in (3, 5, 0, 4)
    ]
    pieces = [Piece("table", t.num_rows, table=t) for t in tables]
    tasks = shard_tasks(tmp_path, "rejects", pieces, 7, "zstd", SCHEMA)
    results = write_shards_locally(tasks, plan=None)
    shards = [pq.read_table(tmp_path / entry["file"]) for entry, _ in results]
    assert [s.num_rows for s in shards] == [7, 7, 7, 3]
    assert pa.concat_tables(shards).equals(pa.concat_tables(tables))
    total = {}
    for _, by_source in results:
        for k, v in by_source.items():
            total[k] = total.get(k, 0) + v
    assert total == {"a": 12, "b": 12}
    assert not list(tmp_path.glob(".tmp-*"))  # no temporary file left behind


def test_a_piece_with_fewer_rows_than_planned_fails_the_shard(tmp_path):
    t = pa.table({"source": ["a"], "x": [1]}, schema=SCHEMA)
    tasks = shard_tasks(tmp_path, "train", [Piece("table", 2, table=t)], 10, "zstd", SCHEMA)
    with pytest.raises(AccountingError, match="expected 2"):
        write_shards_locally(tasks, plan=None)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_small_pieces_are_gathered_into_full_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr("curation.run.assemble.ROW_GROUP_ROWS", 10)
    # Pieces of mixed schemas (a column only some have), as staged reject files are.
    tables = [
        pa.table({"source": ["a"] * n, "x": list(range(n))}, schema=SCHEMA)
        if k % 2
        else pa.table({"source": ["b"] * n})
        for k, n in enumerate((3, 4, 1, 6, 2, 9))
    ]
    pieces = [Piece("table", t.num_rows, table=t) for t in tables]
    (task,) = shard_tasks(tmp_path, "rejects", pieces, 100, "zstd", SCHEMA)
    (entry, by_source), *_ = write_shards_locally([task], plan=None)
    shard = pq.ParquetFile(tmp_path / entry["file"])
    assert [shard.metadata.row_group(i).num_rows for i in range(shard.num_row_groups)] == [10, 10, 5]
    assert by_source == {"a": 19, "b": 6}
    rows = shard.read()
    assert rows["x"].null_count == 6 and rows["source"].to_pylist()[:4] == ["b"] * 3 + ["a"]


@pytest.mark.parametrize("compression", [None, "lz4"])
def test_staged_files_round_trip_with_their_schema_and_row_count(tmp_path, compression):
    from curation.run.staging import read_staged, staged_rows, staged_schema, write_staged

    schema = pa.schema([("id", pa.string()), ("n", pa.int64())])
    table = pa.concat_tables(  # several chunks: several record batches in the file
        [
            pa.table({"id": ["a", "b"], "n": [1, 2]}, schema=schema),
            pa.table({"id": ["c"], "n": [None]}, schema=schema),
        ]
    )
    path = tmp_path / "kept-000000.arrow"
    write_staged(table, path, compression)
    assert staged_schema(path) == table.schema
    assert staged_rows(path) == 3
    assert read_staged(path).equals(table.combine_chunks())
    empty = tmp_path / "empty.arrow"
    write_staged(table.slice(0, 0), empty, compression)
    assert staged_rows(empty) == 0 and read_staged(empty).schema == table.schema


def test_lz4_staging_is_smaller_for_text(tmp_path):
    from curation.run.staging import read_staged, write_staged

    table = pa.table({"text": ["the same sentence, again and again. " * 20] * 200})
    write_staged(table, tmp_path / "plain.arrow")
    write_staged(table, tmp_path / "lz4.arrow", "lz4")
    assert (tmp_path / "lz4.arrow").stat().st_size * 5 < (tmp_path / "plain.arrow").stat().st_size
    assert read_staged(tmp_path / "lz4.arrow").equals(table)

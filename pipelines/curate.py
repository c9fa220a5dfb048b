"""Curate raw SFT sources into Parquet shards, rejects, quarantine and a manifest.

python -m pipelines.curate                       # the bundled sample (data/sample.yaml)
python -m pipelines.curate --config my.yaml --out data/curated/mine
python -m pipelines.curate --source chat=raw/chat.jsonl --source math=raw/gsm8k.json
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from curation.errors import CurationError
from curation.run.polars_threads import one_polars_thread_per_process

SAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "data" / "sample.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipelines.curate", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="YAML config (default: the bundled sample, unless --source is given)")
    p.add_argument("--out", help="output folder (default: data/curated/<run name>)")
    p.add_argument(
        "--source", action="append", default=[], metavar="NAME=PATH", help="add a source (repeatable)"
    )
    p.add_argument("--run-name", help="run name (default from the config, or 'curated')")
    p.add_argument("--tokenizer", help="tokenizer folder or hub id whose chat template the trainer uses")
    p.add_argument(
        "--strict", action="store_true", help="stop at the first bad row, naming file, row and field"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty folder not made by this tool"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on from an interrupted run in the same folder when config and inputs are unchanged",
    )
    p.add_argument(
        "--workers", type=int, help="processes for the map stages, this one included (default: all cores)"
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local processes (default) or Ray Data (pip install 'ray[data]')",
    )
    p.add_argument("--ray-address", help="join this Ray cluster (e.g. HEAD:6379); default: a local Ray")
    p.add_argument("--report-dir", help="where the report goes (default: reports/<run name>)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML/JSON report")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace):
    # Imported here: worker processes import this module as their main module, and need no config.
    from curation.config import SourceConfig, config_from_dict, load_config

    if args.config:
        cfg = load_config(args.config)
    elif args.source:
        cfg = config_from_dict({}, "command line", base_dir=Path.cwd())
    else:
        cfg = load_config(SAMPLE_CONFIG)
    for spec in args.source:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise CurationError(f"--source {spec!r}: expected NAME=PATH")
        try:
            cfg.sources = [*cfg.sources, SourceConfig(name=name, path=path)]
        except ValueError as e:
            raise CurationError(f"--source {spec!r}: {_first_error(e)}") from None
    if args.run_name:
        try:
            cfg.run_name = args.run_name
        except ValueError as e:
            raise CurationError(f"--run-name {args.run_name!r}: {_first_error(e)}") from None
    if args.tokenizer:
        cfg.stages.length.tokenizer = args.tokenizer
    if args.strict:
        cfg.strict = True
    return cfg


def _first_error(e: ValueError) -> str:
    """The message of a (pydantic) validation error, in one line."""
    errors = getattr(e, "errors", None)
    if callable(errors) and errors():
        return errors()[0]["msg"].removeprefix("Value error, ")
    return str(e).splitlines()[0]


def os_error_message(e: OSError) -> str:
    """One line for an OSError: what failed, on which file, and what to do about a full disk."""
    import errno

    where = f"{e.filename}: " if e.filename else ""
    if e.errno == errno.ENOSPC:
        return f"{where}no space left on the device (free some space, then run again with --resume)"
    return f"{where}{e.strerror or e}"


def format_summary(summary: list[dict], stages: list[str]) -> str:
    headers = ["source", "read", "quarantined", *stages, "kept"]
    rows = [
        [r["source"], r["input"], r["quarantined"], *(r["removed"].get(s, 0) for s in stages), r["kept"]]
        for r in summary
    ]
    rows.append(["TOTAL", *(sum(r[i] for r in rows) for i in range(1, len(headers)))])
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = lambda cells: "  ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows[:-1]), sep, line(rows[-1])])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Curation needs only transformers' tokenizers: silence its "PyTorch was not found" advisory.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # Before anything imports polars: one polars thread in each process of a multi-process run.
    one_polars_thread_per_process(None if args.engine == "ray" else args.workers)
    try:
        from curation.run.pipeline import run_curation

        cfg = build_config(args)
        if args.workers is not None and args.workers < 1:
            raise CurationError("--workers must be at least 1")
        result = run_curation(
            cfg,
            out=args.out,
            overwrite=args.overwrite,
            workers=args.workers,
            engine=args.engine,
            ray_address=args.ray_address,
            resume=args.resume,
        )
    except CurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again with --resume to go on", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return 2
    stages = [s for s in result.manifest["stages"] if s not in ("task_type", "dedup_sketch")]  # tags only
    print(format_summary(result.summary, stages))
    t = result.manifest["totals"]
    print(
        f"\n{t['kept']} kept, {t['rejected']} rejected, {t['quarantined']} quarantined "
        f"(of {t['input']}) in {result.manifest['timings_s']['total']:.1f}s -> {result.out}"
    )
    if t.get("validation_rows"):
        print(f"training rows {t['train_rows']} (with mix repeats), validation rows {t['validation_rows']}")
    for warning in result.manifest.get("warnings", []) + result.manifest.get("mix", {}).get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if cfg.report and not args.no_report:
        from curation.report import write_report

        page = write_report(result.out, args.report_dir or Path("reports") / cfg.run_name)
        print(f"report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

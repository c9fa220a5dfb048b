"""Build the report of a curated run and print its summary.

python -m pipelines.report data/curated/sample            # -> reports/sample/index.html
python -m pipelines.report data/curated/sample --out /tmp/report
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from curation.errors import CurationError


def summary_lines(data: dict) -> list[str]:
    t = data["totals"]
    lines = [
        f"run {data['run_name']}: {t['input']} rows read, {t['kept']} kept, "
        f"{t['rejected']} removed, {t['quarantined']} quarantined; "
        f"{t.get('train_rows', t['kept'])} training rows, {data['validation_rows']} validation rows",
        "",
        "removed, by reason:",
    ]
    totals: dict[str, int] = {}
    for reasons in data["rejects_by_reason"].values():
        for r, n in reasons.items():
            totals[r] = totals.get(r, 0) + n
    lines += [f"  {n:>7,}  {r}" for r, n in sorted(totals.items(), key=lambda x: -x[1])] or ["  (none)"]
    before, after = data["diversity"]["before"]["all"], data["diversity"]["after"]["all"]
    lines += ["", f"{'':28s}{'before':>10s}{'after':>10s}"]

    def row(label, b, a, fmt="{:.3f}"):
        f = lambda v: fmt.format(v) if v is not None else "-"  # noqa: E731
        lines.append(f"{label:28s}{f(b):>10s}{f(a):>10s}")

    row("rows", before.get("rows"), after.get("rows"), "{:,}")
    row(
        "task-type entropy (bits)",
        before.get("task_type_entropy", {}).get("bits"),
        after.get("task_type_entropy", {}).get("bits"),
    )
    row(
        "  normalized [0, 1]",
        before.get("task_type_entropy", {}).get("normalized"),
        after.get("task_type_entropy", {}).get("normalized"),
    )
    row("distinct-1 (answers)", before.get("distinct_1"), after.get("distinct_1"))
    row("distinct-2 (answers)", before.get("distinct_2"), after.get("distinct_2"))
    row("refusal share", before.get("refusal_share"), after.get("refusal_share"))
    row(
        "answer tokens, mean",
        before.get("completion_tokens", {}).get("mean"),
        after.get("completion_tokens", {}).get("mean"),
        "{:.1f}",
    )
    sem = data["diversity"].get("semantic") or {}
    sb, sa = sem.get("before", {}), sem.get("after", {})
    if sb.get("skipped") or sa.get("skipped"):
        lines.append(sb.get("skipped") or sa.get("skipped"))
    elif sb or sa:
        row(
            "prompt cluster entropy (norm.)",
            sb.get("cluster_entropy_normalized"),
            sa.get("cluster_entropy_normalized"),
        )
        row("prompt cosine distance", sb.get("mean_cosine_distance"), sa.get("mean_cosine_distance"))
    pr = data["prompt_repetition"]
    lines += ["", f"prompts: {pr.get('distinct_prompts', 0):,} distinct in {pr.get('rows', 0):,} rows; "
              f"{pr.get('share_with_repeated_prompt', 0):.1%} of rows share their prompt with another row"]  # fmt: skip
    for w in (data.get("mix") or {}).get("warnings", []):
        lines.append(f"warning: {w}")
    return lines


def screenshot(page: Path, out: Path, height: int = 1500) -> None:
    """The top of the page in Chromium (Debian's chromium, driven by playwright)."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        raise CurationError(
            "--screenshot needs playwright (pip install playwright) and chromium (apt-get install chromium)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": height})
            tab.goto(page.resolve().as_uri())
            tab.wait_for_load_state("load")
            tab.screenshot(path=str(out))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a curated run folder (with manifest.json)")
    p.add_argument("--out", help="report folder (default: reports/<run name>)")
    p.add_argument(
        "--screenshot",
        metavar="PNG",
        help="also save a screenshot of the page (needs playwright and chromium)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        from curation.report import write_report

        run_dir = Path(args.run_dir)
        if not (run_dir / "manifest.json").is_file():
            raise CurationError(f"{run_dir} is not a curated run folder: no manifest.json")
        name = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["run_name"]
        page = write_report(run_dir, args.out or Path("reports") / name)
    except CurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.screenshot:
        try:
            screenshot(page, Path(args.screenshot))
        except CurationError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    data = json.loads((page.parent / "report.json").read_text(encoding="utf-8"))
    print("\n".join(summary_lines(data)))
    print(f"\nreport: {page.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

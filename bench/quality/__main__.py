"""``python -m bench.quality``: the default filters against the labelled real rows.

Prints precision and recall per stage and reason and the false-reject rate of clean rows per
content type, and writes the tables into bench/RESULTS.md (section "Filter quality on labelled
real rows"), with near dedup on real answer pairs (bench/quality/near_dup_pairs.py). ``--check``
exits 1 when a floor of issue #21 is not reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bench.quality import near_dup_pairs
from bench.quality.evaluate import markdown, metrics, misses, run
from bench.quality.sources import SHARED_DATA

RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
BEGIN = "<!-- bench.quality: begin -->"
END = "<!-- bench.quality: end -->"
HEADING = "## Filter quality on labelled real rows (issue 21)"


def write_results(table: str, results: Path = RESULTS) -> None:
    """Replace the quality section of RESULTS.md (added after the title when missing)."""
    text = results.read_text()
    block = (
        f"{BEGIN}\n{HEADING}\n\nCommand: `python -m bench.quality` (the default config; labels in "
        "`bench/quality/labels.jsonl`, how they were made in `bench/quality/README.md`).\n\n"
        f"{table}{END}"
    )
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        title, _, body = text.partition("\n\n")
        text = f"{title}\n\n{block}\n\n{body}"
    results.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a floor is not reached")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument("--json", type=Path, help="also write every number as JSON here")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not SHARED_DATA.is_dir():
        sys.exit(f"{SHARED_DATA} is missing: the labelled rows are read from ../shared/data")
    m = metrics(run(workers=args.workers))
    pairs = near_dup_pairs.run()
    table = markdown(m) + "\n" + near_dup_pairs.markdown(pairs)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"filters": m, "near_dup_pairs": pairs}, indent=1, default=int))
    if not args.no_write:
        write_results(table)
    missed = misses(m) + near_dup_pairs.misses(pairs)
    for line in missed:
        print("below the floor:", line)
    if args.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()

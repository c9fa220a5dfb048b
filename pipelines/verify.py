"""Verify a curated run: shard sha256s and row counts against the manifest, and the accounting.

python -m pipelines.verify data/curated/sample

Exits 0 when the run is sound, 1 (with every problem listed) when it is not.
"""

from __future__ import annotations

import argparse
import sys

from curation.run.verify import verify_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.verify", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a curate run's output folder (holds manifest.json)")
    args = p.parse_args(argv)
    manifest, problems = verify_run(args.run_dir)
    if problems:
        print(f"{args.run_dir}: FAILED verification:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    t = manifest["totals"]
    print(
        f"{args.run_dir}: OK: {len(manifest['shards'])} shards match their sha256 and row counts; "
        f"input {t['input']} = kept {t['kept']} + rejected {t['rejected']} + quarantined {t['quarantined']} "
        f"for every one of {len(manifest['counts'])} sources"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

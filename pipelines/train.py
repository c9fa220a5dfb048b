"""LoRA SFT on curated data: a curation run, a Parquet/JSONL file or folder, or a hub dataset.

python -m pipelines.train --data data/curated/sample
python -m pipelines.train --data data/curated/sample --max-steps 20 --learning-rate 1e-4 --merge
python -m pipelines.train --data conversations.jsonl --report-to tensorboard --print-config

Settings: the flags below, or --config FILE with any trl.SFTConfig / peft.LoraConfig field name
(flags win); training/config.py lists the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from curation.errors import CurationError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.train",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[1:]),
    )
    p.add_argument(
        "--data",
        required=True,
        help="a curation run folder, a Parquet/JSONL file or folder, or a hub dataset id",
    )
    p.add_argument(
        "--config", help="YAML training config (SFTConfig / LoraConfig names; see training/config.py)"
    )
    p.add_argument("--output", dest="output_dir", help="output folder (default: outputs/<run name>-lora)")
    p.add_argument(
        "--model", help="base model folder or hub id (default: the run's, else SmolLM2-135M-Instruct)"
    )
    p.add_argument("--max-steps", type=int)
    p.add_argument("--epochs", dest="num_train_epochs", type=float)
    p.add_argument("--learning-rate", type=float)
    p.add_argument(
        "--batch-size", dest="per_device_train_batch_size", type=int, help="rows per device and step"
    )
    p.add_argument("--max-length", type=int, help="default: the run's own (its manifest)")
    p.add_argument("--lora-r", dest="r", type=int)
    p.add_argument("--report-to", help="tensorboard, wandb, ... (comma-separated; default: none)")
    p.add_argument("--save-steps", type=int, help="a checkpoint every N steps (default 500)")
    p.add_argument(
        "--resume", nargs="?", const=True, default=None, help="continue from the last checkpoint (or PATH)"
    )
    p.add_argument("--eval-prompts", dest="max_eval_prompts", type=int, help="generate for at most N prompts")
    p.add_argument("--eval-max-new-tokens", dest="max_new_tokens", type=int)
    p.add_argument("--validation-data", help="evaluate on this file of conversations instead of a split")
    p.add_argument("--packing", action="store_true", default=None, help="bfd packing, padding-free")
    p.add_argument("--merge", action="store_true", default=None, help="also write a merged full model")
    p.add_argument("--push-to-hub", metavar="REPO", help="upload the adapter and its card to this hub repo")
    p.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    return p.parse_args(argv)


OVERRIDES = (
    "output_dir", "model", "max_steps", "num_train_epochs", "learning_rate", "per_device_train_batch_size",
    "max_length", "r", "report_to", "save_steps", "resume", "max_eval_prompts", "max_new_tokens",
    "validation_data", "packing", "merge", "push_to_hub",
)  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("training", "curation"):
        logging.getLogger(name).setLevel(logging.WARNING if args.quiet else logging.INFO)
    if args.report_to and "," in args.report_to:
        args.report_to = [x.strip() for x in args.report_to.split(",")]
    try:
        from training.config import load_train_config
        from training.run import plan, train

        cfg = load_train_config(args.config, {k: getattr(args, k) for k in OVERRIDES})
        if args.print_config:
            print(json.dumps(plan(args.data, cfg).settings(), indent=2, default=str))
            return 0
        result = train(args.data, cfg)
    except CurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(
            f"error: training needs the 'train' extra ({e.name} is missing): pip install -e '.[train]'",
            file=sys.stderr,
        )
        return 2
    m = result.metrics
    print(
        f"validation loss {m['eval_loss_before']:.4f} -> {m['eval_loss_after']:.4f} in {m['steps']} steps "
        f"({m['hardware']}); {m['tokens_per_s']:,.0f} tokens/s ({m['trained_tokens_per_s']:,.0f} trained), "
        f"peak memory {m['peak_memory_mb']:,.0f} MB; adapter, model card and eval.json in {result.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

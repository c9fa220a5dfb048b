"""LoRA SFT on the shards of a curation run.

python -m pipelines.train --data data/curated/sample
python -m pipelines.train --data data/curated/sample --max-steps 20 --model path/or/hub-id --merge
"""

from __future__ import annotations

import argparse
import logging
import sys

from curation.errors import CurationError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipelines.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a curation run folder (with manifest.json)")
    p.add_argument("--output", help="output folder (default: outputs/<run name>-lora)")
    p.add_argument("--model", help="base model folder or hub id (default: SmolLM2-135M-Instruct)")
    p.add_argument("--config", help="YAML training config (see training/config.py)")
    p.add_argument("--max-steps", type=int)
    p.add_argument(
        "--validation-data", help="evaluate on this file of conversations instead of the run's split"
    )
    p.add_argument("--epochs", type=float)
    p.add_argument("--packing", action="store_true", default=None, help="bfd packing, padding-free")
    p.add_argument("--merge", action="store_true", default=None, help="also write a merged full model")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        from training.config import load_train_config
        from training.run import train

        cfg = load_train_config(
            args.config,
            {
                "output": args.output,
                "model": args.model,
                "max_steps": args.max_steps,
                "epochs": args.epochs,
                "packing": args.packing,
                "merge": args.merge,
                "validation_data": args.validation_data,
            },
        )
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
        f"peak memory {m['peak_memory_mb']:,.0f} MB; adapter and eval.json in {result.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

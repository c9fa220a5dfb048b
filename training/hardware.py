"""Which path the trainer takes: CUDA (bf16, sdpa/flash attention, tf32) or the CPU (fp32)."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Hardware:
    device: str  # "cuda" or "cpu"
    name: str
    bf16: bool
    attn_implementation: str
    per_device_batch_size: int
    effective_batch_size: int  # rows per optimizer step unless the config says

    def describe(self) -> str:
        precision = "bf16" if self.bf16 else "fp32"
        return f"{self.device} ({self.name}), {precision}, attention={self.attn_implementation}"


def detect() -> Hardware:
    import torch

    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
        return Hardware("cuda", torch.cuda.get_device_name(0), torch.cuda.is_bf16_supported(), attn, 8, 16)
    return Hardware("cpu", "CPU", False, "sdpa", 4, 4)

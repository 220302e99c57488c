"""SmolLM2 full fine-tuning tokens/s and MFU on one GPU (NOT YET RUN: no GPU in the session that wrote it).

    python bench/train_gpu.py                    # ~3-5 min on one H100/H200; writes the bench:train_gpu block
    python bench/train_gpu.py --peak-tflops 312  # A100 bf16 dense peak, when the device is not in the table

Full fine-tuning of SmolLM2-135M (embedded, converted once) in bf16 with packing (rows of 1280 tokens,
padding-free), Adafactor, on the synthetic data of bench/train.py. MFU = achieved model FLOPs / peak, with
model FLOPs per token = 6 x parameters + 12 x layers x hidden x seq (attention, causal halved), the
PaLM-paper accounting; tokens are real (non-pad) tokens, time is the training loop only (after a warm-up run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from docs_block import write_block  # noqa: E402
from train import make_data, one_run  # noqa: E402

MARK = "<!-- bench:train_gpu -->", "<!-- /bench:train_gpu -->"
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def main() -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from sca.models import EMBEDDED, resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=EMBEDDED)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--per-device", type=int, default=16, help="packed rows of --max-length per micro batch")
    parser.add_argument("--max-length", type=int, default=1280)
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="bf16 dense peak; 0 = from the device name")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/train_gpu.py needs a CUDA GPU; bench/train.py is the CPU benchmark")
    name = torch.cuda.get_device_name(0)
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 0.0)
    if not peak:
        raise SystemExit(f"unknown peak FLOPs for {name!r}: pass --peak-tflops")
    model = resolve_model(args.model, Path.home() / ".cache" / "sca")
    cfg = AutoConfig.from_pretrained(model)
    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model).parameters())
    layers, hidden = cfg.num_hidden_layers, cfg.hidden_size
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data", args.examples)
        one_run(model, data, Path(tmp) / "warmup", True, args.per_device, 3, args.max_length)  # kernels, allocator
        stats = one_run(model, data, Path(tmp) / "run", True, args.per_device, args.steps, args.max_length)
    # Packed rows hold several examples; attention spans one example, so ~the mean example length, not the row.
    mean_len = stats["tokens"] / max(stats["train_examples"], 1)
    flops_per_token = 6 * n_params + 12 * layers * hidden * min(mean_len, args.max_length) / 2
    mfu = stats["tokens_per_s"] * flops_per_token / (peak * 1e12)
    block = "\n".join(
        [
            MARK[0],
            f"### SFT on GPU: SmolLM2-135M full fine-tuning (`bench/train_gpu.py`, {time.strftime('%Y-%m-%d')})",
            "",
            f"Device: {name} (bf16 peak {peak:.0f} TFLOP/s), torch {torch.__version__}; bf16, Adafactor, packing "
            f"({args.per_device} rows of {args.max_length} per step), {args.steps} steps after a 3-step warm-up.",
            "",
            "| tokens/s | MFU | params | padding ratio | steps |",
            "|---|---|---|---|---|",
            f"| **{stats['tokens_per_s']:.0f}** | **{100 * mfu:.1f}%** | {n_params / 1e6:.1f} M | "
            f"{stats['padding_ratio']:.3f} | {stats['steps']:.0f} |",
            "",
            MARK[1],
        ]
    )
    print(block)
    print(f"written to {write_block(block, MARK)}")


if __name__ == "__main__":
    main()

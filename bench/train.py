"""SFT throughput with and without packing, on the same data, on this machine (CPU here).

    python bench/train.py                      # tiny model (fast), writes the bench:train block of docs/benchmarks.md
    python bench/train.py --model smollm2      # SmolLM2-135M (embedded), slower

Data: conversational prompt/completion examples whose answers vary in length (1 to 24 code lines), so
padded batches carry real padding. Without packing, ``per_device`` examples are padded to the longest;
with packing, TRL's best-fit-decreasing packs examples into rows of ``max_length`` tokens, fed
padding-free (position ids restart per example, no attention across examples). Tokens/s counts real
(non-pad) tokens over the training loop only; the padding ratio is padded slots / all slots.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docs_block import write_block  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from sca.config import DEFAULT_CACHE, ModelConfig, TrainConfig  # noqa: E402
from sca.io import SUCCESS  # noqa: E402
from sca.records import SFTExample, make_id, to_json  # noqa: E402
from sca.step import StepContext  # noqa: E402
from sca.tracking import WandbRun  # noqa: E402
from sca.train.sft import TrainParams  # noqa: E402

MARK = "<!-- bench:train -->", "<!-- /bench:train -->"
NOTE = (
    "Packing removes the padding (ratio above) but on CPU (SDPA) a packed row is one attention over all "
    "`max_length` tokens with a block-diagonal mask, whose cost grows with the row; which effect wins depends on "
    "the length mix and on the machine's load (0.82x was measured with the cores shared, 1.12x on a quiet "
    "machine). On GPUs, varlen FlashAttention skips the masked blocks."
)


def make_data(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        lines = rng.randint(1, 24)
        body = "\n".join(f"    total += {j} * x  # step {j}" for j in range(lines))
        response = f"```python\ndef f_{i}(x):\n    total = 0\n{body}\n    return total\n```"
        records.append(
            SFTExample(
                id=make_id("bench", str(i)),
                parent_id="",
                prompt=[{"role": "user", "content": f"Write f_{i}: sum j*x for j below {lines}, one line per term."}],
                completion=[{"role": "assistant", "content": response}],
            )
        )
    path.mkdir(parents=True, exist_ok=True)
    (path / "records.jsonl").write_text("".join(to_json(r) + "\n" for r in sorted(records, key=lambda r: r.id)))
    (path / SUCCESS).write_text("ok\n")
    return path


def one_run(
    model: str, data: Path, out: Path, packing: bool, per_device: int, steps: int, max_length: int
) -> dict[str, float]:
    from sca.train.sft import run

    cfg = TrainConfig(
        method="full", max_steps=steps, global_batch_size=per_device, per_device_batch_size=per_device,
        max_length=max_length, packing=packing, save_steps=10**6, logging_steps=steps,
    )  # fmt: skip
    wandb = WandbRun(mode="disabled", project="sca", entity=None, group="", name="", dir="")
    params = TrainParams(cfg, ModelConfig(name_or_path=model), 0, DEFAULT_CACHE, wandb)
    ctx = StepContext(name="bench/train", out=out, inputs={"data": data}, params=params)
    return run(ctx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny | smollm2 | a model path")
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-device", type=int, default=4, help="examples per micro batch without packing")
    parser.add_argument("--max-length", type=int, default=1024, help="packed row length (and truncation length)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    if args.model == "tiny":
        from sca.tools.make_tiny_model import make_tiny_model

        model = str(make_tiny_model(Path.home() / ".cache" / "sca-tests" / "models" / "tiny-qwen2"))
    elif args.model == "smollm2":
        from sca.models import EMBEDDED, resolve_model

        model = resolve_model(EMBEDDED, Path.home() / ".cache" / "sca-tests")
    else:
        model = args.model
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data", args.examples)
        for r in range(args.rounds):  # interleaved, so load on the shared machine hits both alike
            for packing in (False, True):
                out = Path(tmp) / f"run-{r}-{int(packing)}"
                # Packed rows hold ~max_length tokens: one row per micro batch, against per_device padded examples.
                per_device = 1 if packing else args.per_device
                results[packing].append(one_run(model, data, out, packing, per_device, args.steps, args.max_length))
    block = render(args, model, results)
    print(block)
    if not args.no_write:
        print(f"written to {write_block(block, MARK)}")


def render(args: argparse.Namespace, model: str, results: dict[bool, list[dict[str, float]]]) -> str:
    def med(packing: bool, key: str) -> float:
        return statistics.median(r[key] for r in results[packing])

    ratio = med(True, "tokens_per_s") / med(False, "tokens_per_s")
    lines = [
        MARK[0],
        f"### SFT throughput, packing vs padding (`bench/train.py --model {args.model}`, {time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; model `{Path(model).name}`, "
        f"full fine-tuning, fp32, {args.examples} examples with answers of 1-24 code lines, {args.steps} optimizer steps "
        f"per run, median of {args.rounds} interleaved rounds. Tokens/s counts real tokens over the training loop only.",
        "",
        "| mode | micro batch | tokens/s (median) | rounds | padding ratio | tokens per step |",
        "|---|---|---|---|---|---|",
    ]
    for packing, name, batch in (
        (False, "padded", f"{args.per_device} examples"),
        (True, "packed (padding-free)", f"1 row of {args.max_length}"),
    ):
        rounds = ", ".join(f"{r['tokens_per_s']:.0f}" for r in results[packing])
        per_step = med(packing, "tokens") / max(med(packing, "steps"), 1)
        lines.append(
            f"| {name} | {batch} | **{med(packing, 'tokens_per_s'):.0f}** | {rounds} | {med(packing, 'padding_ratio'):.3f} | {per_step:.0f} |"
        )
    lines += ["", f"Packed / padded tokens/s: **{ratio:.2f}x**.", "", NOTE, "", MARK[1]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

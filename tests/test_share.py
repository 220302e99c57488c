"""The shareable outputs: the SFT data as a HF dataset that reloads, its card, the model card, and the Hub push
(against a local stand-in for the Hub: HfApi's methods are replaced here, nothing reaches the network)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from sca.config import ConfigError, EvalConfig, to_config
from sca.eval.evalplus import EvalParams
from sca.io import write_finished_step
from sca.records import EvalSample, Execution, Seed, SFTExample, make_id
from sca.share import publish
from sca.step import Step
from tests.helpers.params import benchmark_files, llm_params


def chain(store: Path, n: int = 3) -> list[Step]:
    """seeds, executions, sft_data (depending on both), train (a model folder) and two eval steps."""
    seeds = Step("seeds", "sca.generate.seeds:run", {"s": 1})
    executions = Step("r0/executions", "sca.sandbox.step:run", {"e": 1})
    sft = Step("r0/sft_data", "sca.curate.step:run", {"c": 1}, {"seeds": seeds, "executions": executions})
    train = Step("r0/train", "sca.train.sft:run", {"t": 1}, {"data": sft})
    scored = EvalParams(EvalConfig(), benchmark_files(), llm_params("m"), 0)
    base_eval = Step("base/eval", "sca.eval.evalplus:run", scored)
    tuned_eval = Step("r0/eval", "sca.eval.evalplus:run", scored, {"model": train})
    write_finished_step(seeds.out_dir(store), [
        Seed(id=f"seed{i}", parent_id="", code=f"def f{i}(): pass", name=f"f{i}", source=f"json/{i}.py")
        for i in range(n)
    ])  # fmt: skip
    write_finished_step(executions.out_dir(store), [
        Execution(id=f"exec{i}", parent_id=f"resp{i}", verdict="passed", tier="B") for i in range(n)
    ])  # fmt: skip
    write_finished_step(sft.out_dir(store), [
        SFTExample(
            id=f"ex{i}", parent_id=f"resp{i}",
            prompt=[{"role": "user", "content": f"Write f{i}."}],
            completion=[{"role": "assistant", "content": f"```python\ndef f{i}(): pass\n```"}],
            lineage={"seed": f"seed{i}", "concepts": f"con{i}", "instruction": f"ins{i}", "response": f"resp{i}",
                     "execution": f"exec{i}"},
        )
        for i in range(n)
    ])  # fmt: skip
    model = train.out_dir(store) / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (train.out_dir(store) / "_SUCCESS").write_text("ok\n")
    for step, solved in ((base_eval, {0}), (tuned_eval, {1, 2})):
        write_finished_step(step.out_dir(store), [
            EvalSample(id=make_id(step.name, str(t)), parent_id="", benchmark="humaneval", task_id=f"HumanEval/{t}",
                       sample=0, prompt="", completion="", solution="",
                       base_verdict="pass" if t in solved else "fail", plus_verdict="pass" if t in solved else "fail")
            for t in range(10)
        ])  # fmt: skip
    return [seeds, base_eval, executions, sft, train, tuned_eval]


RESULTS = {"seeds": {"found": 10, "records": 3}, "r0/sft_data": {"records": 3, "funnel_selected": 3}}


def config(*overrides: str) -> Any:
    from omegaconf import OmegaConf

    raw = OmegaConf.merge(
        OmegaConf.create({"run": {"name": "smol"}, "model": {"name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}}),
        OmegaConf.from_dotlist(list(overrides)),
    )
    return to_config(raw)


class FakeHub:
    """A local stand-in for the Hub: records HfApi calls and copies uploads into a folder per repo."""

    def __init__(self, root: Path) -> None:
        self.root, self.calls = root, []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from huggingface_hub import HfApi

        hub = self

        def create_repo(self: Any, repo_id: str, *, repo_type: str | None = None, **kw: Any) -> str:
            hub.calls.append(("create_repo", repo_id, repo_type, kw.get("private")))
            (hub.root / (repo_type or "model") / repo_id).mkdir(parents=True, exist_ok=True)
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self: Any, *, repo_id: str, folder_path: str, repo_type: str | None = None, **kw: Any) -> str:
            hub.calls.append(("upload_folder", repo_id, repo_type, self.token))
            shutil.copytree(folder_path, hub.root / (repo_type or "model") / repo_id, dirs_exist_ok=True)
            return "commit"

        def upload_file(self: Any, *, path_or_fileobj: str, path_in_repo: str, repo_id: str,
                        repo_type: str | None = None, **kw: Any) -> str:  # fmt: skip
            hub.calls.append(("upload_file", repo_id, repo_type, path_in_repo))
            shutil.copy(path_or_fileobj, hub.root / (repo_type or "model") / repo_id / path_in_repo)
            return "commit"

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
        monkeypatch.setattr(HfApi, "upload_file", upload_file)


def test_dataset_reloads_with_messages_and_lineage_and_cards_say_what_matters(tmp_path: Path) -> None:
    from datasets import load_from_disk

    store, run_dir = tmp_path / "store", tmp_path / "run"
    steps = chain(store)
    share = publish(config(), steps, store, RESULTS, run_dir)
    assert share is not None
    ds = load_from_disk(str(share / "dataset"))
    assert len(ds) == 3
    row = ds[0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert row["messages"][0]["content"] == "Write f0."
    assert (row["seed_id"], row["execution_id"], row["seed_function"], row["seed_source"], row["sandbox_tier"]) == (
        "seed0", "exec0", "f0", "json/0.py", "B",
    )  # fmt: skip
    card = (share / "hub" / "dataset" / "README.md").read_text()
    for needle in ("HuggingFaceTB/SmolLM2-135M-Instruct", "standard library", "## Funnel", "| r0/sft_data (SFT examples) | 3 |", "| functions found | 10 |",
                   "tiers used: B", "## Decontamination", "against ['humaneval', 'mbpp']", "| datasets |",
                   "size_categories:", "n<1K"):  # fmt: skip
        assert needle in card, needle
    assert "Responses and tests: As the method asks: one request per sample" in card
    model = (share / "hub" / "model" / "README.md").read_text()
    for needle in ("base_model: HuggingFaceTB/SmolLM2-135M-Instruct", "learning rate 1e-05", "lora (r=16",
                   "| base | humaneval | 0.100 | 0.100 [0.018, 0.404] |", "| r0 | humaneval | 0.200 |",
                   "| humaneval | r0 | 10 | 0 | 2 | 1 | 7 | 1.000 | within noise |", "EvalPlus 0.3 float tolerance",
                   "(not pushed)"):  # fmt: skip
        assert needle in model, needle
    assert (share / "hub" / "dataset" / "data" / "train-00000-of-00001.parquet").exists()


def test_push_uploads_both_repos_to_the_hub_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datasets import load_dataset

    hub = FakeHub(tmp_path / "hub")
    hub.install(monkeypatch)
    monkeypatch.setenv("SCA_TEST_TOKEN", "hf_secret")
    store, run_dir = tmp_path / "store", tmp_path / "run"
    publish(config("hub.repo_id=me/smol-sca", "hub.token_env=SCA_TEST_TOKEN"), chain(store), store, {}, run_dir)
    assert [c[:3] for c in hub.calls] == [
        ("create_repo", "me/smol-sca", "dataset"), ("upload_folder", "me/smol-sca", "dataset"),
        ("create_repo", "me/smol-sca", "model"), ("upload_folder", "me/smol-sca", "model"),
        ("upload_file", "me/smol-sca", "model"),
    ]  # fmt: skip
    assert hub.calls[0][3] is True and hub.calls[1][3] == "hf_secret", "private by default, the configured token"
    pushed = tmp_path / "hub" / "dataset" / "me" / "smol-sca"
    parquet = str(pushed / "data" / "train-00000-of-00001.parquet")
    assert len(load_dataset("parquet", data_files=parquet, split="train")) == 3
    model = tmp_path / "hub" / "model" / "me" / "smol-sca"
    assert (model / "config.json").exists()
    assert "https://huggingface.co/datasets/me/smol-sca" in (model / "README.md").read_text()
    assert "datasets:\n- me/smol-sca" in (model / "README.md").read_text()


def test_no_push_without_repo_id_and_nothing_without_sft_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = FakeHub(tmp_path / "hub")
    hub.install(monkeypatch)
    store = tmp_path / "store"
    steps = chain(store)
    publish(config(), steps, store, {}, tmp_path / "run")
    assert hub.calls == []
    only_seeds = [s for s in steps if s.name == "seeds"]
    assert publish(config(), only_seeds, store, {}, tmp_path / "run2") is None


def test_examples_without_lineage_are_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    steps = chain(store)
    sft = next(s for s in steps if s.name == "r0/sft_data")
    shutil.rmtree(sft.out_dir(store))
    write_finished_step(sft.out_dir(store), [SFTExample(id="x", parent_id="r", prompt=[], completion=[])])
    with pytest.raises(ValueError, match="no lineage"):
        publish(config(), steps, store, {}, tmp_path / "run")


def test_a_malformed_repo_id_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hub.repo_id='not a repo'"):
        config("hub.repo_id=not a repo")


def test_the_dataset_card_names_how_tests_were_asked_for_and_kept(tmp_path: Path) -> None:
    store, run_dir = tmp_path / "store", tmp_path / "run"
    ours = (
        "generate.responses.continue_for_tests=true", "generate.responses.stop_at_code_end=true",
        "generate.responses.tests_call_solution=true", "sandbox.stub_check=true", "curate.require_strong_tests=true",
    )  # fmt: skip
    share = publish(config(*ours), chain(store), store, RESULTS, run_dir)
    assert share is not None
    card = (share / "hub" / "dataset" / "README.md").read_text()
    for needle in ("stopped at the end of its first code block", "asked for them in a second request",
                   "started with a call of the answer's function", "pass against a stub of the solution"):  # fmt: skip
        assert needle in card, needle
    assert "As the method asks" not in card

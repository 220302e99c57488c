#!/usr/bin/env bash
# Fine-tune on ONE node with torchrun: one process per GPU (NPROC overrides; CPU-only: 1, or 2 to try
# DeepSpeed/gloo). Arguments go to `python -m sca.train.sft`: either a step the orchestrator planned,
#   launch/train.sh --step outputs/store/r0/train-<key>
# or a dataset, a base model and train.* overrides (Hydra syntax, checked against TrainConfig):
#   launch/train.sh --data outputs/store/r0/sft_data-<key> --base Qwen/Qwen2.5-Coder-7B --out outputs/sft-7b \
#       train.method=full train.deepspeed=conf/deepspeed/zero3.json train.per_device_batch_size=2
# The global batch (train.global_batch_size, 64 by default) is kept: accumulation = 64 / (per_device x NPROC).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() or 1)')}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m sca.train.sft "$@"

"""Training's progress on the terminal: the HF Trainer's own tqdm bar writes to stderr, which in a child step is
the step's log file (sca.logs), so an sca bar follows the optimizer steps instead, with the latest loss."""

from __future__ import annotations

import os
from typing import Any

from transformers import TrainerCallback

from sca.progress import bar


class StepBar(TrainerCallback):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        self.name = name
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if int(os.environ.get("RANK", "0")) == 0:
            self.bar = bar(state.max_steps, self.name, unit="step", initial=state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

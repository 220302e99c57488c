"""Optional RL after SFT: GRPO on the round's own learnable tasks, the sandbox as the reward (docs/rl.md)."""

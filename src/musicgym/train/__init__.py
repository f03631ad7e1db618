"""Training glue: Stable-Baselines3 adapters (more of the training issue comes here)."""

"""The rollout engine: agents drive many environments in lock-step and get per-episode records."""

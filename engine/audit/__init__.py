"""The time-travel audit: journaled inputs, checkpoints, replay through ``step`` and "why"."""

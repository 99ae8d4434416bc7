"""Retrainer: clean data, LoRA fine-tune with early stopping, acceptance gate, registry, rollout."""

"""Inference service: gRPC on the vLLM engine, LoRA adapters by alias, loss-free events."""

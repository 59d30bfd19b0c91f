"""What the fan is told and why: Rasa's classification, checked and corrected.

Rasa's sparse classifier picks one of its intents for anything; around it, three checks that
the in-process engine applied before the split and the model server applies now:
the vocabulary check (no word the model was trained on: its score means nothing), the
out-of-domain gate (far from every training example, or nearest to an out-of-scope one) and
the nearest-example vote (the classifier and the sentence encoder decide together).
"""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from addons.ood import OUT_OF_SCOPE, RESCUE_SIMILARITY, DomainGate, Neighbours
from addons.vocabulary import load_vocabulary, words

FALLBACK_INTENT = "nlu_fallback"
#: At most this many intents in a reply's ranking (the bot shows a few in `/why`).
RANKING_LENGTH = 10


@dataclass(frozen=True)
class Decision:
    """The contract's reply body; `intent`/`confidence`/`guess` mean what the bot's
    `EngineResult` means: for a fallback, `guess` is the best real intent and `confidence`
    its score, so `/why` can be honest about it."""

    texts: tuple[str, ...]
    intent: Optional[str]
    confidence: Optional[float]
    guess: Optional[str]
    ranking: tuple[tuple[str, float], ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "texts": list(self.texts),
            "intent": self.intent,
            "confidence": self.confidence,
            "guess": self.guess,
            "ranking": [{"name": name, "confidence": score} for name, score in self.ranking],
        }


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 4)


class Decider:
    def __init__(self, responses: Mapping[str, Sequence[Mapping[str, Any]]], vocabulary: frozenset[str], gate: Optional[DomainGate]) -> None:
        self._responses_by_name = responses
        self._vocabulary = vocabulary
        self._gate = gate
        # The encoder runs beside Rasa's classification, not after it: its compiled pass releases
        # the GIL, so on the second core it overlaps Rasa's Python work (docs/benchmarks.md:
        # pipeline p50 1.72x bare Rasa with the encoder after it, 1.47-1.52x beside it).
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder") if gate is not None else None

    @classmethod
    def load(cls, model_path: Path, responses: Mapping[str, Sequence[Mapping[str, Any]]]) -> "Decider":
        """The checks for a loaded model (files beside it, written by `addons.train`), warmed up."""
        vocabulary = load_vocabulary(model_path)
        gate = DomainGate.load(model_path, vocabulary)
        if gate is not None:
            # One BLAS thread for the process: Rasa's work and the encoder's each have a core of
            # the two; a BLAS pool on top of them only makes them wait for each other.
            from addons.encoder import blas_threads

            blas_threads(1)
            gate.neighbours("warm up")  # the encoder's weights and graphs now, not on a fan's message
        # TensorFlow and Rasa leave millions of long-lived objects; a full garbage collection
        # walking them paused replies by hundreds of milliseconds.
        gc.collect()
        gc.freeze()
        return cls(responses, vocabulary, gate)

    @property
    def checked(self) -> bool:
        """Whether the vocabulary check and the out-of-domain gate are on (files beside the model)."""
        return bool(self._vocabulary) and self._gate is not None

    def neighbours_soon(self, text: str) -> "Optional[asyncio.Future[Neighbours]]":
        """Starts the encoder on the text in its thread; await the result after Rasa's turn."""
        if self._gate is None:
            return None
        return asyncio.get_running_loop().run_in_executor(self._encoder, self._gate.neighbours, text)

    def decide(self, text: str, replies: Sequence[Mapping[str, Any]], parse: Mapping[str, Any], near: Optional[Neighbours]) -> Decision:
        intent = parse.get("intent") or {}
        name: Optional[str] = intent.get("name")
        confidence: Optional[float] = intent.get("confidence")
        guess: Optional[str] = None
        texts = tuple(str(reply["text"]) for reply in replies if reply.get("text"))
        real = {r["name"]: float(r.get("confidence") or 0.0) for r in parse.get("intent_ranking") or [] if r.get("name") not in (None, FALLBACK_INTENT)}
        if self._vocabulary and name != FALLBACK_INTENT and not words(text) & self._vocabulary:
            name, guess = FALLBACK_INTENT, name  # no word the model knows: its score means nothing
        elif near is not None and near.out_of_domain() and name not in (FALLBACK_INTENT, OUT_OF_SCOPE):
            name, guess = OUT_OF_SCOPE, name  # far from everything it was trained on: not its domain
        elif near is not None and real and (name != FALLBACK_INTENT or near.in_domain >= RESCUE_SIMILARITY) and not near.out_of_domain():
            chosen = near.combined(real)  # the classifier and the nearest examples decide together
            if chosen != name:
                # Rasa answered for its own intent; answer for the chosen one (one rule per intent).
                name, confidence, texts = chosen, real.get(chosen, 0.0), self.responses(chosen)
        if name == FALLBACK_INTENT and guess is None and real:  # the classifier's own fallback
            guess = max(real, key=real.__getitem__)
            confidence = real[guess]
        ranking = sorted(real.items(), key=lambda item: item[1], reverse=True)[:RANKING_LENGTH]
        return Decision(texts, name, _round(confidence), guess, tuple((n, float(_round(c) or 0.0)) for n, c in ranking))

    def responses(self, intent: str) -> tuple[str, ...]:
        """The domain's reply for an intent (`utter_<intent>`, as the rules answer it)."""
        variants = self._responses_by_name.get(f"utter_{intent}") or []
        return tuple(str(v["text"]) for v in variants[:1] if v.get("text"))

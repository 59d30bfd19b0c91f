"""The default engine: a trained Rasa model loaded in-process."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Coroutine, Optional, TypeVar

from bot.engine import FALLBACK_INTENT, EngineResult, ModelMissingError
from bot.engine.ood import OUT_OF_SCOPE, RESCUE_SIMILARITY, DomainGate, Neighbours
from bot.engine.vocabulary import load_vocabulary, words
from bot.quiet import quiet_rasa

if TYPE_CHECKING:
    from bot.engine.tracker_store import ExpiringInMemoryTrackerStore

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _EngineThread:
    """Rasa's inference is CPU work inside coroutines: on the connectors' event loop it
    would hold up everything else (a slash command's 3-second ack, heartbeats). The agent
    gets its own loop in its own thread; the connectors' loop only awaits the result."""

    #: With the GIL handed over every 5 ms (Python's default), each step of a slash command's
    #: ack waits behind a slice of model work. Measured (docs/benchmarks.md): at 0.2 ms the
    #: ack p99 under load is ~60 ms (1 ms: ~110-175 ms) for ~1.5 ms more per model reply.
    SWITCH_INTERVAL_SECONDS = 0.0002

    def __init__(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), self.SWITCH_INTERVAL_SECONDS))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rasa-engine", daemon=True)
        self._thread.start()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))


class RasaEngine:
    def __init__(
        self, agent: Any, trackers: "ExpiringInMemoryTrackerStore", vocabulary: frozenset[str], gate: Optional[DomainGate] = None
    ) -> None:
        self._agent = agent
        self._trackers = trackers
        self._vocabulary = vocabulary
        self._gate = gate
        self._thread = _EngineThread()
        # The encoder runs beside Rasa's classification, not after it: its compiled pass releases
        # the GIL, so on the second core it overlaps Rasa's Python work (docs/benchmarks.md:
        # pipeline p50 1.72x main's pipeline after Rasa, 1.47-1.52x beside it in the same minutes).
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder") if gate is not None else None

    @classmethod
    def load(cls, model_path: Path, tracker_idle_seconds: float) -> "RasaEngine":
        """Loads the model (seconds of CPU); call once per process, before serving."""
        if not model_path.is_file():
            raise ModelMissingError(f"no trained model at {model_path}: run `bot train` (or `make run`)")
        quiet_rasa()
        # skops (which stores the logistic regression) scans every loaded module when first
        # imported; importing it before Rasa pulls in TensorFlow cuts the load from ~9 s to <1 s.
        import skops.io  # noqa: F401
        from rasa.core.agent import Agent  # heavy imports: only once an engine is wanted

        from bot.engine.tracker_store import ExpiringInMemoryTrackerStore

        trackers = ExpiringInMemoryTrackerStore(idle_seconds=tracker_idle_seconds)
        agent = Agent.load(str(model_path), tracker_store=trackers)
        # TensorFlow and Rasa leave millions of long-lived objects; a full garbage collection
        # walking them paused every reply (and every ack) by hundreds of milliseconds.
        vocabulary = load_vocabulary(model_path)
        gate = DomainGate.load(model_path, vocabulary)
        if gate is not None:
            # One BLAS thread for the process: Rasa's thread and the encoder's each have a core of
            # the two; a BLAS pool on top of them only makes them wait for each other.
            from bot.engine.encoder import blas_threads

            blas_threads(1)
            gate.neighbours("warm up")  # loads the encoder's weights now, not on a fan's message
        gc.collect()
        gc.freeze()
        logger.info("dialogue model loaded")
        return cls(agent, trackers, vocabulary, gate)

    @property
    def agent(self) -> Any:
        """The loaded `rasa.core.agent.Agent`, for benchmarks against bare Rasa."""
        return self._agent

    async def respond(self, pseudonym: str, text: str) -> EngineResult:
        replies, parse, near = await self._thread.run(self._predict(pseudonym, text))
        intent = parse.get("intent") or {}
        name: Optional[str] = intent.get("name")
        confidence: Optional[float] = intent.get("confidence")
        guess: Optional[str] = None
        texts = tuple(reply["text"] for reply in replies if reply.get("text"))
        real = {r["name"]: float(r.get("confidence") or 0.0) for r in parse.get("intent_ranking", []) if r.get("name") not in (None, FALLBACK_INTENT)}
        if self._vocabulary and name != FALLBACK_INTENT and not words(text) & self._vocabulary:
            name, guess = FALLBACK_INTENT, name  # no word the model knows: its score means nothing
        elif near is not None and near.out_of_domain() and name not in (FALLBACK_INTENT, OUT_OF_SCOPE):
            name, guess = OUT_OF_SCOPE, name  # far from everything it was trained on: not its domain
        elif near is not None and real and (name != FALLBACK_INTENT or near.in_domain >= RESCUE_SIMILARITY) and not near.out_of_domain():
            chosen = near.combined(real)  # the classifier and the nearest examples decide together
            if chosen != name:
                # Rasa answered for its own intent; answer for the chosen one (one rule per intent).
                name, confidence, texts = chosen, real.get(chosen, 0.0), self._responses(chosen)
        if name == FALLBACK_INTENT and guess is None and real:  # the classifier's own fallback
            guess = max(real, key=real.__getitem__)
            confidence = real[guess]
        return EngineResult(
            texts=texts,
            intent=name,
            confidence=None if confidence is None else round(float(confidence), 4),
            guess=guess,
        )

    def _responses(self, intent: str) -> tuple[str, ...]:
        """The domain's reply for an intent (`utter_<intent>`, as the rules answer it)."""
        variants = self._agent.domain.responses.get(f"utter_{intent}") or []
        return tuple(v["text"] for v in variants[:1] if v.get("text"))

    async def _predict(self, pseudonym: str, text: str) -> tuple[list[dict[str, Any]], dict[str, Any], Optional[Neighbours]]:
        gate, near = self._gate, None
        pending = asyncio.get_running_loop().run_in_executor(self._encoder, gate.neighbours, text) if gate is not None else None
        try:
            replies = await self._agent.handle_text(text, sender_id=pseudonym) or []
        finally:
            if pending is not None:
                near = await pending
        return replies, self._trackers.latest_parse.get(pseudonym, {}), near

    async def forget(self, pseudonym: str) -> int:
        return await self._thread.run(self._forget(pseudonym))

    async def _forget(self, pseudonym: str) -> int:
        async with self._agent.lock_store.lock(pseudonym):
            return int(self._trackers.drop(pseudonym))

"""Keyboard slips mapped onto the words the model was trained on, for the sentence encoder.

The encoder splits an unknown word into word pieces: "bufering" becomes pieces that mean
little, so a fan's typo'd question lands far from every training example and the
out-of-domain gate took it for off-topic (typo-register macro-F1 0.865 with the gate, 0.946
without). Only words that are neither an English word the encoder knows whole nor a word of
the training data are corrected, to the closest training word; off-topic text, written in
real words, passes unchanged, so the gate keeps its power there (docs/benchmarks.md).
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from typing import Iterable

_WORD = re.compile(r"[a-z]+")
#: difflib ratio a correction must reach: "bufering" -> "buffering" (0.94), "epsiode" ->
#: "episode" (0.86); below about 0.8 unrelated words start to match.
CUTOFF = 0.8
MIN_LENGTH = 4


class Speller:
    def __init__(self, training_words: Iterable[str], known_words: Iterable[str]) -> None:
        targets = sorted({w for w in training_words if w.isalpha() and len(w) >= 3})
        self._known = frozenset(known_words) | frozenset(targets)
        self._by_initial: dict[str, list[str]] = defaultdict(list)
        for word in targets:  # a slip rarely changes the first letter: compare within it only
            self._by_initial[word[0]].append(word)
        self._cache: dict[str, str] = {}

    def correct(self, text: str) -> str:
        """The text with each unknown word replaced by its closest training word, if close."""
        return _WORD.sub(lambda m: self._word(m.group(0)), text.lower())

    def _word(self, word: str) -> str:
        if len(word) < MIN_LENGTH or word in self._known:
            return word
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        match = difflib.get_close_matches(word, self._by_initial.get(word[0], ()), n=1, cutoff=CUTOFF)
        if not match:
            # Not cached: a word close to nothing the assistant knows is often personal (a name,
            # a handle), and a fan's words must not outlive their message in this process.
            return word
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[word] = match[0]  # a slip of a training word: nothing personal in it
        return match[0]

"""Which language a fan wrote in, offline, so a message the model cannot read is never guessed at.

py3langid (BSD-3-Clause, langid.py's model inside the wheel) scores the text against a fixed
set of languages. Telling a fan who wrote English that the assistant only understands English is a
bad failure, and a character-level detector calls short English other things ("privacy question"
Spanish, "hello everyone" Italian: 42 of 1,594 training lines), so a message counts as another
language only when all three hold: it is long enough, at least half of its words are not common
English words (bot/english_words.py), and the detector is sure. Text in a CJK script is the
exception: no English word list can vouch for it. Rates of false and true detections are measured
by bench/language_eval.py (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Optional

from bot.english_words import WORDS as ENGLISH

#: Languages the detector chooses between: the ones we answer in, and common neighbours, so that
#: Italian is not forced into Spanish. Restricting the set makes short texts far more accurate.
CANDIDATES = ("en", "es", "pt", "fr", "de", "it", "nl", "ja", "zh", "ko", "ru", "pl", "tr", "sv", "id")
#: Below these, English is assumed (measured: see docs/benchmarks.md).
MIN_LETTERS = 12
MIN_WORDS = 2
MIN_PROBABILITY = 0.95
#: A message with at least this share of common English words is English, without asking the
#: detector (which also saves its ~0.8 ms on nearly every message).
ENGLISH_SHARE = 0.5
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_LETTERS = re.compile(r"[^\W\d_]")
_WORDS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")

#: The honest answer, in the fan's language: what the assistant understands, and /human.
REPLIES = {
    "es": "Lo siento: soy un asistente automático (una IA) y solo entiendo {names}. No quiero adivinar lo que pides. Escribe /human para hablar con una persona.",
    "pt": "Desculpe: sou um assistente automático (uma IA) e só entendo {names}. Não quero adivinhar o que você pediu. Escreva /human para falar com uma pessoa.",
    "fr": "Désolé : je suis un assistant automatique (une IA) et je ne comprends que {names}. Je préfère ne pas deviner. Tapez /human pour parler à une personne.",
    "de": "Entschuldigung: Ich bin ein automatischer Assistent (eine KI) und verstehe nur {names}. Ich möchte nicht raten. Schreib /human, um mit einem Menschen zu sprechen.",
    "ja": "申し訳ありません。私は自動応答のAIアシスタントで、{names}しか理解できません。推測で答えることはしません。担当者と話すには /human と入力してください。",
    "it": "Mi dispiace: sono un assistente automatico (un'IA) e capisco solo {names}. Non voglio tirare a indovinare. Scrivi /human per parlare con una persona.",
}
DEFAULT_REPLY = "Sorry: I'm an automated AI assistant and I only understand {names}, so I won't guess at your message. Type /human to reach a person."
_NAMES = {
    "en": {"en": "English", "es": "inglés", "pt": "inglês", "fr": "l'anglais", "de": "Englisch", "ja": "英語", "it": "l'inglese"},
    "es": {"en": "Spanish", "es": "español", "pt": "espanhol", "fr": "l'espagnol", "de": "Spanisch", "ja": "スペイン語", "it": "lo spagnolo"},
    "pt": {"en": "Portuguese", "es": "portugués", "pt": "português", "fr": "le portugais", "de": "Portugiesisch", "ja": "ポルトガル語", "it": "il portoghese"},
    "fr": {"en": "French", "es": "francés", "pt": "francês", "fr": "le français", "de": "Französisch", "ja": "フランス語", "it": "il francese"},
    "de": {"en": "German", "es": "alemán", "pt": "alemão", "fr": "l'allemand", "de": "Deutsch", "ja": "ドイツ語", "it": "il tedesco"},
}


@lru_cache(maxsize=1)
def _identifier() -> Any:  # py3langid has no type hints
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(CANDIDATES))
    return identifier


def english_share(text: str) -> float:
    """The share of the text's words that are common English words (1.0 for no words)."""
    found = _WORDS.findall(text.lower())
    return sum(word in ENGLISH for word in found) / len(found) if found else 1.0


def detect(text: str) -> Optional[str]:
    """The language code when the text is confidently not English, else None."""
    if _CJK.search(text):
        language, _ = _identifier().classify(text)
        return language if language != "en" else None
    if len(_LETTERS.findall(text)) < MIN_LETTERS or len(_WORDS.findall(text)) < MIN_WORDS:
        return None
    if english_share(text) >= ENGLISH_SHARE:
        return None
    ranking = dict(_identifier().rank(text))
    best = max((code for code in ranking if code != "en"), key=ranking.__getitem__)
    # Sure that it is not English (Spanish and Portuguese share much, so the sum counts).
    return best if 1.0 - ranking.get("en", 0.0) >= MIN_PROBABILITY else None


def foreign(text: str, understood: tuple[str, ...]) -> Optional[str]:
    """The detected language when it is not one the assistant understands."""
    if set(CANDIDATES) <= set(understood):
        return None  # every language the detector knows is understood: nothing to refuse
    language = detect(text)
    return language if language is not None and language not in understood else None


def unsupported_reply(language: str, understood: tuple[str, ...]) -> str:
    names = [_NAMES.get(code, {}).get(language) or _NAMES.get(code, {}).get("en") or code for code in understood]
    joined = ", ".join(names)
    return REPLIES.get(language, DEFAULT_REPLY).format(names=joined)

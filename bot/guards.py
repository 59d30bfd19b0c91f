"""Model-independent checks on what a fan wrote.

"Am I talking to a bot?" must always get a truthful answer, even when the model
misreads the question, so the check is plain patterns, outside the model.
"""

from __future__ import annotations

import re
from typing import Optional

_YOU = r"(?:you|u|ya|thou)"
_THIS = r"(?:you|u|ya|this|it|that)"
_BE = r"(?:are|r|is)"
_BOTLIKE = (
    r"(?:a\s+|an\s+|some\s+(?:kind|sort)\s+of\s+|actually\s+|really\s+|just\s+)*"
    r"(?:bot|robot|chat\s*bot|ai|a\.i\.?|machine|computer|program|automated|automatic|auto[- ]?reply|script|llm|gpt|artificial)"
)
_HUMANLIKE = (
    r"(?:a\s+|an\s+|actual\s+|actually\s+|real\s+|really\s+|live\s+|living\s+|genuine\s+)*"
    r"(?:human(?:\s+being)?|person|people|humans|agent|operator|staff|somebody|someone|man|woman|guy|girl|mod(?:erator)?)"
)

_PATTERNS = [
    # "are you a bot", "is this an AI", "is this automated"
    rf"\b{_BE}\s+{_THIS}\s+(?:even\s+|really\s+|actually\s+)?{_BOTLIKE}\b",
    # "r u human", "are you a real person", "are you real"
    rf"\b{_BE}\s+{_YOU}\s+(?:even\s+|really\s+|actually\s+)?(?:{_HUMANLIKE}|real\b)",
    # "am I talking/chatting/speaking to a bot / a real person"
    rf"\b(?:am|m)\s+i\s+(?:\w+\s+)?(?:talking|chatting|speaking|texting|messaging|writing)\s+(?:to|with)\s+(?:{_BOTLIKE}|{_HUMANLIKE})\b",
    # "is a real person typing/reading/answering these"
    rf"\b(?:is|are)\s+(?:there\s+)?{_HUMANLIKE}\s+(?:\w+\s+)?(?:typing|writing|answering|replying|reading|responding|behind|on\s+the\s+other\s+end)",
    # "human or bot?", "bot or not"
    rf"\b(?:{_BOTLIKE})\s+or\s+(?:{_HUMANLIKE}|not)\b",
    rf"\b(?:{_HUMANLIKE})\s+or\s+(?:{_BOTLIKE})\b",
    # "who am I talking to", "who is replying"
    r"\bwho\s+(?:am\s+i|i'?m)\s+(?:talking|chatting|speaking)\s+(?:to|with)\b",
    r"\bwho(?:'s|\s+is)\s+(?:typing|replying|answering|writing)\b",
    # "if you're an AI", "prove that you're a person", "you are a real human?"
    rf"\b(?:you'?re|you\s+are|u\s+r|ur)\s+(?:even\s+|really\s+|actually\s+|just\s+)?(?:{_BOTLIKE}|{_HUMANLIKE})\b",
    # "do you consider yourself a bot", "would you call yourself human"
    rf"\b(?:consider|call|think\s+of|describe)\s+yourself\s+(?:to\s+be\s+|as\s+)?(?:{_BOTLIKE}|{_HUMANLIKE})\b",
    # "what are you?", "what r u"
    r"^\s*what\s+(?:are|r)\s+(?:you|u)\s*\??\s*$",
]
_COMPILED = re.compile("|".join(f"(?:{pattern})" for pattern in _PATTERNS), re.IGNORECASE)


def asks_if_human(text: str) -> bool:
    """True when the fan asks whether they are talking to a bot or a person."""
    return _COMPILED.search(" ".join(text.split())) is not None


_YES_WORDS = (
    r"y|ye|yes|yess|yea|yeah|yep|yup|ya|yah|sure|ok|okay|okey|k|kk|alright|all right|please|pls|plz|"
    r"yes please|yes pls|sure thing|of course|definitely|absolutely|do it|go ahead|go for it|please do|"
    r"si|sí|oui|ja|sim|はい|sounds good|that would be great|i do|i would|yes i do|yes i would|yes do it|ok do it|yes thanks|yes thank you"
)
_NO_WORDS = (
    r"n|no|nope|nah|na|no thanks|no thank you|not now|not really|no need|dont|don't|do not|never mind|nevermind|"
    r"non|nein|não|nao|いいえ|cancel|stop|no i don't|no i dont|i'm good|im good|i'm fine|im fine|all good|no it's fine|no its fine"
)
_YES = re.compile(rf"^(?:{_YES_WORDS})(?:\s+(?:{_YES_WORDS}))*$")
_NO = re.compile(rf"^(?:{_NO_WORDS})(?:\s+(?:{_NO_WORDS}))*$")
#: Emoji a fan answers a yes/no question with (skin-tone and variation selectors are dropped first).
_YES_EMOJI = frozenset("👍👌✅✔☑🙆💯🆗🙏😊🙂😀👏")
_NO_EMOJI = frozenset("👎❌✖🙅⛔🚫")
_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f\ufe0e\u200d]")


def yes_or_no(text: str) -> Optional[bool]:
    """True for a plain yes (in words or emoji), False for a plain no, None for anything else."""
    bare = _MODIFIERS.sub("", text).strip()
    symbols = {char for char in bare if not char.isspace()}
    if symbols and symbols <= _YES_EMOJI:
        return True
    if symbols and symbols <= _NO_EMOJI:
        return False
    words = " ".join(re.sub(r"[^\w'\s]", " ", bare.lower()).split())
    if _YES.match(words):
        return True
    if _NO.match(words):
        return False
    return None


_UPSET = re.compile(
    r"\b(?:furious|angry|mad|pissed|livid|outraged|annoyed|frustrat\w*|fed up|sick of|tired of|unacceptable|ridiculous|"
    r"disgrace\w*|scam\w*|rip[- ]?off|worst|terrible|awful|useless|garbage|trash|joke|wtf|hate)\b",
    re.IGNORECASE,
)


def sounds_upset(text: str) -> bool:
    """A complaint riding along a question ("charged twice ... I am furious")."""
    return _UPSET.search(text) is not None

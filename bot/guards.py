"""Model-independent checks on what a fan wrote.

"Am I talking to a bot?" must always get a truthful answer, even when the model
misreads the question, so the check is plain patterns, outside the model.
"""

from __future__ import annotations

import re

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
]
_COMPILED = re.compile("|".join(f"(?:{pattern})" for pattern in _PATTERNS), re.IGNORECASE)


def asks_if_human(text: str) -> bool:
    """True when the fan asks whether they are talking to a bot or a person."""
    return _COMPILED.search(" ".join(text.split())) is not None

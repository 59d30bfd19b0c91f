"""E-mail addresses per RFC 5322 / RFC 6531: internationalised local parts and domains.

Our scan finds a candidate around each "@" (the local part walked back over RFC 6531
atext, which includes any non-ASCII letter, mark or symbol); `email-validator` decides,
with deliverability checks off (no DNS query) and test/special domains allowed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Optional

from email_validator import EmailNotValidError, validate_email

#: The domain after "@": labels of letters (any script), digits and hyphens; a TLD of
#: letters or a punycode label (xn--...).
#: Any character but white space, ASCII punctuation and the Unicode punctuation blocks
#: (general, CJK, full-width, guillemets, inverted marks); letters' combining marks count
#: (Devanagari, Thai...), which `\w` alone misses.
_L = r"[^\s!-/:-@\[-`{-~\u00a1\u00ab\u00bb\u00bf\u2000-\u206f\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]"
_LABEL = rf"{_L}(?:(?:{_L}|-)*{_L})?"
DOMAIN_RE = re.compile(rf"@{_LABEL}(?:\.{_LABEL})*\.(?:xn--[a-z0-9-]{{2,59}}|{_L}{{2,63}})(?!{_L}|-)", re.IGNORECASE)
_ATEXT_ASCII = frozenset("!#$%&'*+-/=?^_`{|}~.")
_ATEXT_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "So", "Sk"})


def _atext(char: str) -> bool:
    if char.isascii():
        return char.isalnum() or char in _ATEXT_ASCII
    return unicodedata.category(char) in _ATEXT_CATEGORIES


def local_start(text: str, at: int, floor: int) -> Optional[int]:
    """Where the local part before text[at] == "@" begins (None: there is none)."""
    start = at
    while start > floor and _atext(text[start - 1]):
        start -= 1
    while start < at and text[start] in ".'`{|}~=/-":  # sentence punctuation, not address
        start += 1
    return start if start < at else None


def valid(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False, globally_deliverable=False, test_environment=True)
    except EmailNotValidError:
        return False
    return True

"""One normal form for what a fan typed, applied once before the guards and the model.

Phones and keyboards vary the same words: curly apostrophes ("who’s typing"), full-width
letters, zero-width joiners, "sooooo" and "!!!!". The guards are patterns and the model
counts words and character n-grams, so both only see the one form produced here.
"""

from __future__ import annotations

import re
import unicodedata

_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'", "\u00b4": "'", "`": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2013": "-", "\u2014": "-", "\u2212": "-",
    }
)
#: Zero-width and other invisible format characters (ZWSP, ZWNJ, ZWJ, word joiner, BOM, soft hyphen).
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
#: A letter repeated three or more times: "sooooo" -> "soo" (two keep "good", "soon").
_REPEATED_LETTER = re.compile(r"([^\W\d_])\1{2,}")
#: Runs of the same punctuation: "!!!" -> "!", "???" -> "?", "...." -> "...".
_REPEATED_PUNCT = re.compile(r"([!?,;:])\1+|\.{4,}")


def normalize(text: str) -> str:
    """NFKC, straight quotes, no invisible characters, tamed repetitions, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _INVISIBLE.sub("", text)
    text = _REPEATED_LETTER.sub(r"\1\1", text)
    text = _REPEATED_PUNCT.sub(lambda m: m.group(1) or "...", text)
    return " ".join(text.split())

"""Splitting long replies at natural boundaries, for platforms with a per-message limit."""

from __future__ import annotations

#: Preferred break points, best first: paragraph, line, sentence, word.
_BREAKS = ("\n\n", "\n", ". ", " ")


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters that join back to the text (modulo the
    whitespace at each break). A piece is cut mid-word only when a word is longer than
    the limit."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for mark in _BREAKS:
            found = window.rfind(mark)
            if found > limit // 4:  # a break too near the start would make tiny pieces
                cut = found + len(mark.rstrip()) if mark.strip() else found
                break
        if cut <= 0:
            cut = limit
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces

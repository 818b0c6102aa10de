"""Input checks shared by every task: each raises ValueError with a sentence a person can act on.

A value from the API can be any JSON: text, a list, null, NaN, ∞, or an integer of four hundred digits
(Python's `json` reads it exactly; converting it to float raises OverflowError). Every check here compares
without converting first, so each of them gets the same range sentence.
"""

from __future__ import annotations

import math
import unicodedata

MAX_TEXT_CHARS = 10_000
"""Longer text is refused before tokenization; text within it but beyond a model's
token limit is truncated and the result says so."""
MAX_QUOTED_CHARS = 40
"""A value quoted back in a sentence is cut to this many characters."""


def quoted(value: object) -> str:
    """`value` as a sentence quotes it: its repr, cut to `MAX_QUOTED_CHARS` (a 400-digit number, a long text)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_QUOTED_CHARS:
        return f"a number of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 1] + "…"


def check_text(text: object, action: str) -> str:
    """Stripped `text`, or ValueError with a sentence a person can act on."""
    if text is not None and not isinstance(text, str):
        raise ValueError(f"The text must be a string, got {type(text).__name__}: type a sentence to {action}.")
    if not text or not text.strip():
        raise ValueError(f"The text is empty: type a sentence to {action}.")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"The text is {len(text):,} characters long; shorten it to at most {MAX_TEXT_CHARS:,}.")
    check_unicode(text, "text")
    return text.strip()


def check_unicode(text: str, what: str) -> None:
    """ValueError for text that is not valid Unicode (a lone surrogate, say): tokenizers reject it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"The {what} contains a character that is not valid Unicode at position {exc.start}; remove it."
        ) from None


def printable(text: str) -> str:
    """`text` without what a tokenizer cannot take: control characters (line breaks and tabs become
    spaces) and format characters (bidirectional marks, zero-width joiners, byte-order marks). Both
    backends get this text, so the request stays the same request."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":
            kept.append(" " if char in "\t\n\r\x0b\x0c" else "")
        elif category != "Cf":
            kept.append(char)
    return "".join(kept)


def _is_number(value: object) -> bool:
    """A real number as JSON gives it: int or float, not bool, not NaN or ±∞."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def whole_number(value: object, name: str, low: int, high: int) -> int:
    """An int from a UI/API number (a float with no fraction is one), or ValueError naming the allowed range."""
    if not _is_number(value) or not low <= value <= high or value != int(value):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {quoted(value)}.")
    return int(value)


def real_number(value: object, name: str, low: float, high: float) -> float:
    """A float from a UI/API number within [low, high], or ValueError naming the allowed range."""
    if not _is_number(value) or not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {quoted(value)}.")
    return float(value)

"""Input checks shared by every task: each raises ValueError with a sentence a person can act on."""

from __future__ import annotations

import math

MAX_TEXT_CHARS = 10_000
"""Longer text is refused before tokenization; text within it but beyond a model's
token limit is truncated and the result says so."""


def check_text(text: object, action: str) -> str:
    """Stripped `text`, or ValueError with a sentence a person can act on."""
    if not isinstance(text, str) or not text.strip():
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


def whole_number(value: object, name: str, low: int, high: int) -> int:
    """An int from a UI/API number, or ValueError naming the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    if value != int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(value)

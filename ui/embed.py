"""One tab in a blog post: query parameters open a tab with its inputs filled in.

    https://<space>.hf.space/?tab=translation&text=Where+is+the+station%3F&lang=German&only=1

`tab` names a tab by its slug (`translation`, `classification`, `sd`, `pose`, `benchmarks`, `system`);
the other parameters fill that tab's inputs by the names its `render` returns (`text`, `lang`, `tokens`,
`labels`, `prompt`, `negative`, `steps`, `guidance`, `seed`, `backend`); `only=1` hides the other tabs
and the header, so an iframe shows just the tab a post writes about. A value is only ever placed in its
input, as typed: text is cut to the box's length, a choice must be one of the choices, a number must be
in range; anything else is left as it was. Nothing runs until the visitor presses the tab's button.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import gradio as gr

Fields = dict[str, gr.components.Component]
"""A tab's inputs by their query-parameter names."""
TRUE = ("1", "true", "yes", "on")


def coerce(component: gr.components.Component, raw: str):
    """`raw` as a value `component` accepts, or None when it accepts no such value."""
    if isinstance(component, gr.Dropdown | gr.Radio):
        by_name = {str(value).lower(): value for _, value in component.choices}
        return by_name.get(raw.strip().lower())
    if isinstance(component, gr.Slider | gr.Number):
        try:
            number = float(raw)
        except ValueError:
            return None
        low, high = component.minimum, component.maximum
        if not math.isfinite(number) or (low is not None and number < low) or (high is not None and number > high):
            return None
        return int(number) if number.is_integer() else number
    if isinstance(component, gr.Textbox):
        return raw[: component.max_length] if component.max_length else raw
    return None


def prefill(params: Mapping[str, str], slugs: list[str], fields: list[Fields]) -> tuple[str | None, bool, list[list]]:
    """From a page's query parameters: the tab to open (None: the default), whether to hide the others,
    and per tab the new value of each of its fields, in `fields` order (`gr.skip()` where unchanged)."""
    slug = params.get("tab", "").strip().lower()
    chosen = slug if slug in slugs else None
    only = chosen is not None and params.get("only", "").strip().lower() in TRUE
    values = []
    for name, tab_fields in zip(slugs, fields, strict=True):
        row = []
        for key, component in tab_fields.items():
            value = coerce(component, params[key]) if name == chosen and key in params else None
            row.append(gr.skip() if value is None else value)
        values.append(row)
    return chosen, only, values

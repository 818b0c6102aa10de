"""What hypothesis sends as a visitor's inputs: any text, backend and number, valid or not."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pipelines.core.checks import MAX_TEXT_CHARS

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXTS = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=50).map(lambda s: s * 400),
    st.just("x" * (MAX_TEXT_CHARS + 1)),
    st.just("\ud800 lone surrogate"),
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
)
BACKENDS = st.one_of(st.sampled_from(["OpenVINO", "PyTorch", "Both"]), st.text(max_size=12), st.none(), st.integers())
NUMBERS = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.integers(min_value=257, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.text(max_size=4),
    st.booleans(),
)

"""The text tabs' OpenVINO inference on a model server: OpenVINO Model Server, or any server of the
KServe V2 (Open Inference Protocol) REST API holding the app's repository (`python -m pipelines.scale_out`).

Tokenizing stays here; each model call is one V2 `infer` through tritonclient's HTTP client, with
numpy arrays sent and received as binary tensors:

- an encoder (sentiment, embeddings): one call per model call, the same inputs and outputs as `OVEncoder`;
- T5: the encoder once, then the stateful decoder once per token, its KV cache kept on the server for the
  sequence (OVMS's `sequence_id` / `sequence_control_input` inputs), each step answering with its two best
  next tokens (`ovms_layout.NEXT_TOKENS`) instead of the vocabulary's logits, and sending the encoder's
  output at the sequence's first step only (`ovms_layout`). A sequence that ends before
  its last step (end-of-sequence, Stop) is closed with one more call, so the server frees its state.

Every remote model keeps its local model: when the server does not answer within `timeout_s` (down,
slow, or refusing), the request is answered by the local model and its timing says why; the server is
then left alone for `RETRY_S` seconds, so the requests in between do not wait for it.

The timing separates the round trips (the client's clock around each call) from the server-side time,
read from the server's Prometheus metrics before and after the request: OVMS's `ovms_inference_time_us`
or KServe's `request_predict_seconds`. When the server counted calls that were not this request's (a
server shared by several apps), the server-side time is left out rather than guessed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from pipelines.core.ovms_layout import (
    NEXT_TOKENS,
    NEXT_TOKENS_K,
    SEQUENCE_CONTROL,
    SEQUENCE_END,
    SEQUENCE_ID,
    SEQUENCE_START,
    served_names,
)
from pipelines.models.t5_openvino import greedy_only

logger = logging.getLogger(__name__)

REMOTE = "OpenVINO (remote)"
"""The `backend` of a timing dict whose OpenVINO inference ran on the model server."""
RETRY_S = 30.0
"""After a failed call, the server is tried again this many seconds later (the local model answers meanwhile)."""
SERVER_METRICS = {
    # metric family (a histogram): (label naming the model, seconds per unit)
    "ovms_inference_time_us": ("name", 1e-6),
    "request_predict_seconds": ("model_name", 1.0),
}


class RemoteError(Exception):
    """A model server call that failed; the message is a sentence for the person."""


@dataclass
class Calls:
    """One request's calls to the server, kept per thread (one request runs in one thread)."""

    count: int = 0
    round_trip_s: float = 0.0
    last_s: float = 0.0
    """The last call's round trip."""
    models: set[str] = field(default_factory=set)
    before: dict[str, tuple[float, float]] | None = None
    fallback: str = ""
    wasted_s: float = 0.0
    """Time on the server whose answers were not used (failed calls, a translation begun again locally)."""
    used: bool = False
    """Whether the request used an answer of the server before the local model took over."""


class ModelServer:
    """A V2 server at `url` (`http://host:port`). One tritonclient client per thread: the client is not
    thread-safe. Any failure (refused, timed out, an error status) raises `RemoteError`."""

    def __init__(self, url: str, timeout_s: float):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self._host, self._ssl = parts.netloc, parts.scheme == "https"
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._down_until, self._down_reason = 0.0, ""

    # -- the connection -----------------------------------------------------------------------------
    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            import tritonclient.http as httpclient

            client = httpclient.InferenceServerClient(
                self._host,
                ssl=self._ssl,
                connection_timeout=self.timeout_s,
                network_timeout=self.timeout_s,
            )
            self._local.client = client
        return client

    def _reset_client(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            with contextlib.suppress(Exception):  # a broken connection may not close cleanly; it goes either way
                client.close()

    def skipped(self) -> str:
        """Why the server is not tried now ("" when it is)."""
        if time.monotonic() < self._down_until:
            left = self._down_until - time.monotonic()
            return f"{self._down_reason} The app tries it again in {left:.0f} s."
        return ""

    def _failed(self, exc: BaseException, model: str) -> RemoteError:
        """The sentence for a failed call. A server that answered with an error (a model it does not have,
        inputs it refuses) fails this request only; one that cannot be reached or does not answer in time is
        left alone for `RETRY_S`, so the requests in between do not wait for it."""
        from tritonclient.utils import InferenceServerException

        if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
            exc = exc.reason  # urllib's wrapper of the socket's error
        answered = isinstance(exc, InferenceServerException)
        if answered:
            # Its own words go to the log only: they may name the server's folders.
            cause = f"it answered with an error ({exc.status() or 'no status'})"
        elif isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
            cause = f"it did not answer within {self.timeout_s:g} s"
        elif isinstance(exc, ConnectionRefusedError):
            cause = "nothing is listening there (connection refused)"
        else:
            cause = f"the call failed ({type(exc).__name__})"
        # The server's address stays in the log: the people using the app need not learn the network's layout.
        reason = f"The model server could not run {model}: {cause}."
        if not answered:
            self._down_until, self._down_reason = time.monotonic() + RETRY_S, reason
        self._reset_client()  # a timed-out connection may still carry the late answer
        logger.warning("%s: %s %s", self.url, reason, exc)
        return RemoteError(reason)

    def infer(self, model: str, arrays: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """One V2 inference: `arrays` in, the named `outputs` back, all as binary tensors."""
        import tritonclient.http as httpclient
        from tritonclient.utils import np_to_triton_dtype

        if reason := self.skipped():
            raise RemoteError(reason)
        inputs = []
        for name, array in arrays.items():
            item = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            item.set_data_from_numpy(np.ascontiguousarray(array), binary_data=True)
            inputs.append(item)
        wanted = [httpclient.InferRequestedOutput(name, binary_data=True) for name in outputs]
        calls = self.calls()
        start = time.perf_counter()
        try:
            result = self._client().infer(model, inputs, outputs=wanted)
            found = {name: result.as_numpy(name) for name in outputs}
        except Exception as exc:  # every failure of the server or the wire: the caller answers locally
            raise self._failed(exc, model) from exc
        finally:
            calls.last_s = time.perf_counter() - start
            calls.round_trip_s += calls.last_s
            calls.count += 1
            calls.models.add(model)
        missing = [name for name, value in found.items() if value is None]
        if missing:
            raise self._failed(ValueError(f"no {missing} in the answer"), model)
        return found

    def describe(self, models: list[tuple[str, bool]]) -> str:
        """The server and whether it serves the app's text models now (`models`: (key, is translation) each)."""
        try:
            client = self._client()
            missing = [
                name
                for key, translation in models
                for name in served_names(key, translation)
                if not client.is_model_ready(name)
            ]
        except Exception as exc:  # startup goes on: each request answers locally until the server is back
            return f"{self.url}, not answering now ({type(exc).__name__}); the local models answer meanwhile"
        finally:
            self._reset_client()
        return f"{self.url}, " + (f"without {', '.join(missing)}" if missing else "every text model ready")

    # -- one request's accounting -----------------------------------------------------------------
    def calls(self) -> Calls:
        calls = getattr(self._local, "calls", None)
        if calls is None:
            calls = self._local.calls = Calls()
        return calls

    def begin(self) -> None:
        """Start a request's accounting (before its timed region: reads the server's metrics)."""
        self._reset_client()  # a request that ended early (Stop, an error) did not reach `finish`
        self._local.calls = Calls(before=None if self.skipped() else self.server_seconds())

    def finish(self) -> dict:
        """The timing fields of the request begun last on this thread (after its timed region). Its
        connection is closed: requests run in threads that come and go (an image or streamed request
        gets a thread of its own), and a client left to each would hold its socket until collected."""
        calls = self.calls()
        try:
            return self._fields(calls)
        finally:
            self._reset_client()
            self._local.calls = None

    def _fields(self, calls: Calls) -> dict:
        if calls.fallback:
            rest = "the rest of this request" if calls.used else "this request"
            return {
                "remote_error": f"{calls.fallback} The local OpenVINO model answered {rest}.",
                "remote_wait_ms": round(calls.wasted_s * 1000, 3),
            }
        fields: dict = {"remote_calls": calls.count, "round_trip_ms": round(calls.round_trip_s * 1000, 3)}
        after = self.server_seconds() if calls.before is not None and not self.skipped() else None
        server = None
        if calls.before is not None and after is not None:
            counted = sum(after.get(m, (0, 0))[1] - calls.before.get(m, (0, 0))[1] for m in calls.models)
            if counted == calls.count:
                server = sum(after.get(m, (0, 0))[0] - calls.before.get(m, (0, 0))[0] for m in calls.models)
            else:
                fields["server_ms_note"] = (
                    f"the server counted {counted:g} calls for {calls.count} of this request (shared with other "
                    "clients): its time is not this request's alone"
                )
        elif calls.before is None or after is None:
            fields["server_ms_note"] = "the server publishes no inference-time metrics at /metrics"
        fields["server_ms"] = None if server is None else round(server * 1000, 3)
        return fields

    def server_seconds(self) -> dict[str, tuple[float, float]] | None:
        """Per model name: (seconds of inference, calls) the server has counted so far; None when its
        `/metrics` has neither OVMS's nor KServe's inference-time histogram (or does not answer)."""
        from prometheus_client.parser import text_string_to_metric_families

        try:  # not through a proxy from the environment: the V2 calls do not go through one either
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"{self.url}/metrics", timeout=self.timeout_s) as response:
                text = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:  # it answers, without metrics: the round trips are still measured
            logger.info("no metrics from %s (HTTP %s)", self.url, exc.code)
            return None
        except Exception as exc:  # it does not answer: the request's calls go to the local model at once
            self._failed(exc, "this request")
            return None
        found: dict[str, list[float]] = {}
        published = False
        for family in text_string_to_metric_families(text):
            if family.name not in SERVER_METRICS:
                continue
            published = True  # no samples yet: no model has run since the server started
            label, unit = SERVER_METRICS[family.name]
            for sample in family.samples:
                model = sample.labels.get(label)
                if model is None:
                    continue
                entry = found.setdefault(model, [0.0, 0.0])
                if sample.name.endswith("_sum"):
                    entry[0] += sample.value * unit
                elif sample.name.endswith("_count"):
                    entry[1] += sample.value
        return {model: (s, n) for model, (s, n) in found.items()} if published else None


class RemoteEncoder:
    """`OVEncoder`'s call on the model server; the local `OVEncoder` answers when the server does not."""

    def __init__(self, server: ModelServer, name: str, local, outputs: list[str]):
        self.server, self.name, self.local, self.outputs = server, name, local, outputs

    def __call__(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        calls = self.server.calls()
        if not calls.fallback:
            try:
                wanted = {name: arrays[name] for name in self.local.input_names}
                found = self.server.infer(self.name, wanted, self.outputs)
                calls.used = True
                return found
            except RemoteError as exc:
                calls.fallback, calls.wasted_s = str(exc), calls.wasted_s + calls.last_s
        return self.local(**arrays)


class RemoteT5Greedy:
    """`OVT5Greedy.generate` on the model server (see the module's docstring); the local `OVT5Greedy`
    answers when the server does not, from the start of the request."""

    def __init__(self, server: ModelServer, key: str, local):
        self.server, self.local = server, local
        self.encoder, self.decoder = served_names(key, translation=True)
        self.config = local.config
        self._sequences = iter(range(1, 1 << 62))
        self._lock = threading.Lock()

    def _sequence_id(self) -> int:
        """A sequence id no other request of this app uses (random high bits: other apps share the server)."""
        with self._lock:
            return (int.from_bytes(np.random.default_rng().bytes(3), "little") << 40) | next(self._sequences)

    def generate(
        self, input_ids, attention_mask, max_new_tokens: int, min_new_tokens: int = 0, on_token=None, **decoding
    ) -> np.ndarray:
        greedy_only("The remote T5 decoder", **decoding)
        calls = self.server.calls()
        if not calls.fallback:
            spent = calls.round_trip_s
            try:
                return self._generate(input_ids, attention_mask, max_new_tokens, min_new_tokens, on_token)
            except RemoteError as exc:  # begun again locally: every call of this translation was in vain
                calls.fallback, calls.wasted_s = str(exc), calls.wasted_s + calls.round_trip_s - spent
        return self.local.generate(input_ids, attention_mask, max_new_tokens, min_new_tokens, on_token=on_token)

    def _generate(self, input_ids, attention_mask, max_new_tokens, min_new_tokens, on_token) -> np.ndarray:
        input_ids, attention_mask = np.asarray(input_ids, np.int64), np.asarray(attention_mask, np.int64)
        hidden = self.server.infer(
            self.encoder, {"input_ids": input_ids, "attention_mask": attention_mask}, ["last_hidden_state"]
        )["last_hidden_state"]
        eos = self.config["eos_token_id"]
        tokens = [self.config["decoder_start_token_id"]]
        sequence = np.array([self._sequence_id()], dtype=np.uint64)
        fixed = {
            "encoder_hidden_states": hidden,
            "encoder_attention_mask": attention_mask,
            "beam_idx": np.zeros(1, dtype=np.int32),
            SEQUENCE_ID: sequence,
        }
        open_ = False
        try:
            for n in range(max_new_tokens):
                if n == 1:  # the state holds the encoder's output now: a one-position placeholder will do
                    fixed["encoder_hidden_states"] = np.zeros((1, 1, hidden.shape[-1]), dtype=hidden.dtype)
                last = n == max_new_tokens - 1
                # A one-token request starts its sequence and ends it with one more call (`_close`).
                control = SEQUENCE_START if n == 0 else (SEQUENCE_END if last else 0)
                step = {"input_ids": np.array([[tokens[-1]]], dtype=np.int64), **fixed}
                step[SEQUENCE_CONTROL] = np.array([control], dtype=np.uint32)
                # Before the call: a start the server refused with an error may still be ended; one that timed
                # out is not (the server is skipped for a while), and the server's idle cleanup frees it.
                open_ = control != SEQUENCE_END
                best = self.server.infer(self.decoder, step, [NEXT_TOKENS])[NEXT_TOKENS].reshape(-1)[:NEXT_TOKENS_K]
                # Greedy with a minimum length: the best token, or the second when the best ends too early.
                tokens.append(int(best[1] if n < min_new_tokens and int(best[0]) == eos else best[0]))
                if on_token is not None:
                    on_token(tokens[1:])
                if tokens[-1] == eos:
                    break
        finally:
            if open_:
                self._close(tokens[-1], fixed)
        return np.array([tokens], dtype=np.int64)

    def _close(self, token: int, fixed: dict) -> None:
        """End the sequence on the server (one more step, its answer unused), so its state is freed."""
        step = {"input_ids": np.array([[token]], dtype=np.int64), **fixed}
        step[SEQUENCE_CONTROL] = np.array([SEQUENCE_END], dtype=np.uint32)
        with contextlib.suppress(RemoteError):  # else the server's idle-sequence cleanup frees it later
            self.server.infer(self.decoder, step, [NEXT_TOKENS])


def attach(server: ModelServer, key: str, translation: bool, local, outputs: list[str]):
    """The remote twin of a local OpenVINO text model."""
    return RemoteT5Greedy(server, key, local) if translation else RemoteEncoder(server, key, local, outputs)

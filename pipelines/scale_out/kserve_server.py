"""The app's OpenVINO Model Server repository served by KServe's Python `ModelServer`.

    pip install kserve==0.21.0
    python -m pipelines.scale_out.kserve_server --repo DIR [--root /models] [--port 8080]

The same V2 (Open Inference Protocol) REST API as OpenVINO Model Server, over the same repository
(`python -m pipelines.scale_out`) and its `config.json`: each model compiled with its `plugin_config`,
reshaped to its `shape`, and a `stateful` model (the T5 decoder) kept per sequence as OVMS does:
`sequence_control_input` 1 starts a sequence (a fresh state), 2 ends it (the state is dropped),
`sequence_id` names it, and every response carries it back. It is the second way to deploy the
repository on KServe / Kubernetes (a custom Python predictor), and what the tests serve it with.

The text tabs need only these V2 calls; image generation is OVMS's (its graph), not served here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from pathlib import Path

import numpy as np

from pipelines.core.ovms_layout import (
    MODEL_FILE,
    SEQUENCE_CONTROL,
    SEQUENCE_END,
    SEQUENCE_ID,
    SEQUENCE_START,
    VERSION,
    model_entries,
    read_config,
)

logger = logging.getLogger(__name__)
IDLE_SEQUENCE_S = 300.0
"""A sequence without a call for this long is dropped when another starts (OVMS scans every 5 minutes)."""


def partial_shape(text: str) -> str:
    """OVMS's shape text "(1,1:512)" in OpenVINO's PartialShape syntax "[1,1..512]"; -1 stays dynamic."""
    dims = [d.strip() for d in text.strip().strip("()").split(",")]
    return "[" + ",".join(d.replace(":", "..") for d in dims) + "]"


def make_model(entry: dict, folder: Path, delay_s: float = 0.0):
    """A `kserve.Model` serving one entry of the repository's `model_config_list` from `folder`
    (`<name>/`). `delay_s`: seconds each inference waits first (a slow server, for tests)."""
    import kserve
    import openvino as ov
    from kserve.errors import InvalidInput
    from kserve.utils.numpy_codec import from_np_dtype

    class IRModel(kserve.Model):
        def __init__(self):
            super().__init__(entry["name"])
            core = ov.Core()
            model = core.read_model(folder / str(VERSION) / MODEL_FILE)
            if entry.get("shape"):
                shapes = entry["shape"]
                if isinstance(shapes, str):
                    shapes = {port.get_any_name(): shapes for port in model.inputs}
                model.reshape({name: ov.PartialShape(partial_shape(text)) for name, text in shapes.items()})
            self.compiled = core.compile_model(model, entry.get("target_device", "CPU"), entry.get("plugin_config", {}))
            self.stateful = bool(entry.get("stateful"))
            self.max_sequences = int(entry.get("max_sequence_number", 500))
            self.idle_cleanup = bool(entry.get("idle_sequence_cleanup", True))
            self.inputs = {port.get_any_name() for port in self.compiled.inputs}
            self.outputs = [port.get_any_name() for port in self.compiled.outputs]
            self.sequences: dict[int, ov.InferRequest] = {}
            self.last_used: dict[int, float] = {}
            self.lock = threading.Lock()
            self.request = None if self.stateful else self.compiled.create_infer_request()
            self.ready = True

        def _infer_request(self, arrays: dict[str, np.ndarray]):
            """The infer request this call runs on and the sequence id to answer with (stateful only)."""
            if not self.stateful:
                return self.request, None
            sequence = int(arrays.pop(SEQUENCE_ID, np.zeros(1)).reshape(-1)[0])
            control = int(arrays.pop(SEQUENCE_CONTROL, np.zeros(1)).reshape(-1)[0])
            if control not in (0, SEQUENCE_START, SEQUENCE_END):
                raise InvalidInput(f"Unexpected value of sequence control input: {control}")
            now = time.monotonic()
            if control == SEQUENCE_START:
                if sequence in self.sequences:
                    raise InvalidInput(f"Sequence with provided ID already exists: {sequence}")
                if self.idle_cleanup:  # OVMS's sequence cleaner, run when a sequence starts
                    for stale in [s for s, used in self.last_used.items() if now - used > IDLE_SEQUENCE_S]:
                        self.sequences.pop(stale), self.last_used.pop(stale)
                if len(self.sequences) >= self.max_sequences:
                    raise InvalidInput("Max sequence number has been reached. Could not create a new sequence.")
                sequence = sequence or (max(self.sequences, default=0) + 1)
                self.sequences[sequence] = self.compiled.create_infer_request()
            elif sequence not in self.sequences:
                raise InvalidInput(f"Sequence with a provided ID does not exist: {sequence}")
            self.last_used[sequence] = now
            return self.sequences[sequence], (sequence, control)

        async def predict(self, payload, headers=None, response_headers=None):
            # Off the server's event loop: health, metadata and /metrics answer while a model runs.
            return await asyncio.get_running_loop().run_in_executor(None, self._predict, payload)

        def _predict(self, payload):
            if delay_s:
                time.sleep(delay_s)
            arrays = {item.name: item.as_numpy() for item in payload.inputs}
            missing = self.inputs - set(arrays)
            if missing:
                raise InvalidInput(f"Missing inputs for model {self.name}: {sorted(missing)}")
            asked = [output.name for output in payload.request_outputs or []] or self.outputs
            with self.lock:  # one inference at a time per model, as one infer request per sequence needs
                request, sequence = self._infer_request(arrays)
                try:
                    request.infer({name: arrays[name] for name in self.inputs})
                except Exception:
                    if sequence is not None and sequence[1] in (SEQUENCE_START, SEQUENCE_END):
                        self.sequences.pop(sequence[0], None), self.last_used.pop(sequence[0], None)
                    raise
                results = {
                    name: request.get_output_tensor(i).data.copy()
                    for i, name in enumerate(self.outputs)
                    if name in asked
                }
                if sequence is not None:
                    results[SEQUENCE_ID] = np.array([sequence[0]], dtype=np.uint64)
                    if sequence[1] == SEQUENCE_END:
                        del self.sequences[sequence[0]], self.last_used[sequence[0]]
            outputs = []
            for name, data in results.items():
                output = kserve.InferOutput(name=name, shape=list(data.shape), datatype=from_np_dtype(data.dtype))
                output.set_data_from_numpy(data, binary_data=True)
                outputs.append(output)
            return kserve.InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                infer_outputs=outputs,
                use_binary_outputs=payload.use_binary_outputs,
                requested_outputs=payload.request_outputs,
            )

    return IRModel()


def models_of(repository: Path, root: str = "/models", delay_s: float = 0.0) -> list:
    """A `kserve.Model` for every model of the repository's `model_config_list` (each `base_path`,
    written for the server's container under `root`, found in `repository`)."""
    repository = Path(repository)
    models = []
    for entry in model_entries(read_config(repository)):
        base = entry["base_path"]
        relative = base[len(root) :].lstrip("/") if base.startswith(root) else base
        folder = repository / relative
        if not (folder / str(VERSION) / MODEL_FILE).is_file():
            raise ValueError(f"{entry['name']}: no {VERSION}/{MODEL_FILE} in {folder}")
        models.append(make_model(entry, folder, delay_s))
        logger.info("serving %s from %s", entry["name"], folder)
    return models


def launch(repository: Path, port: int, log: Path, delay_s: float = 0.0, timeout_s: float = 120.0):
    """This server in a process of its own, serving `repository` on 127.0.0.1:`port`, its output in the file
    `log` (a pipe nobody reads would fill and stall it); returned once every model is ready."""
    import subprocess
    import sys

    import tritonclient.http as httpclient

    command = [sys.executable, "-m", __name__, "--repo", str(repository), "--port", str(port), "--delay", str(delay_s)]
    with Path(log).open("wb") as sink:
        process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=sink, stderr=sink)
    names = [entry["name"] for entry in model_entries(read_config(repository))]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the model server exited: {Path(log).read_text()[-3000:]}")
        try:
            client = httpclient.InferenceServerClient(f"127.0.0.1:{port}", connection_timeout=1, network_timeout=1)
            if all(client.is_model_ready(name) for name in names):
                return process
        except Exception:  # not listening yet
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"the model server was not ready in {timeout_s:g} s")


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.scale_out.kserve_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repo", type=Path, required=True, help="the repository `python -m pipelines.scale_out` wrote")
    parser.add_argument("--root", default="/models", help="the mount point its base_paths were written for")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    parser.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)  # a slow server, for tests
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kserve import ModelServer

    models = models_of(args.repo, args.root, args.delay)
    ModelServer(http_port=args.port, enable_grpc=False, workers=1).start(models)


if __name__ == "__main__":
    _main()

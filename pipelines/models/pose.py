"""OpenPose body detection on OpenVINO or PyTorch, with controlnet_aux doing everything else.

controlnet_aux's `Body` resizes the image, runs the body network once, finds the peaks
of its heatmaps and links them with the part-affinity fields; `OpenposeDetector` turns
that into normalised keypoints and `draw_poses` draws the ControlNet condition image.
The only swap is the network: `OVBodyNetwork` keeps the PyTorch module's call
signature, so the same controlnet_aux code runs on either backend.

Presets are keypoint sets drawn with the same `draw_poses`.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.core.images import Letterbox, letterbox

PRESETS_DIR = Path(__file__).resolve().parents[2] / "assets" / "poses"

# OpenPose body keypoints (COCO-18 order: nose, neck, r-shoulder, r-elbow, r-wrist,
# l-shoulder, l-elbow, l-wrist, r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye,
# l-eye, r-ear, l-ear), normalised to the image, for the presets.
PRESET_KEYPOINTS: dict[str, list[tuple[float, float]]] = {
    "standing": [
        (0.50, 0.14), (0.50, 0.25), (0.41, 0.25), (0.38, 0.40), (0.37, 0.54), (0.59, 0.25), (0.62, 0.40),
        (0.63, 0.54), (0.45, 0.53), (0.45, 0.71), (0.45, 0.89), (0.55, 0.53), (0.55, 0.71), (0.55, 0.89),
        (0.48, 0.12), (0.52, 0.12), (0.46, 0.13), (0.54, 0.13),
    ],
    "arms raised": [
        (0.50, 0.24), (0.50, 0.35), (0.41, 0.35), (0.34, 0.23), (0.30, 0.10), (0.59, 0.35), (0.66, 0.23),
        (0.70, 0.10), (0.45, 0.62), (0.44, 0.78), (0.44, 0.94), (0.55, 0.62), (0.56, 0.78), (0.56, 0.94),
        (0.48, 0.22), (0.52, 0.22), (0.46, 0.23), (0.54, 0.23),
    ],
    "walking": [
        (0.52, 0.13), (0.50, 0.24), (0.42, 0.25), (0.37, 0.38), (0.40, 0.50), (0.58, 0.24), (0.63, 0.37),
        (0.66, 0.48), (0.46, 0.52), (0.38, 0.68), (0.30, 0.85), (0.54, 0.52), (0.60, 0.70), (0.64, 0.88),
        (0.50, 0.11), (0.54, 0.11), (0.48, 0.12), (0.56, 0.12),
    ],
    "sitting": [
        (0.46, 0.20), (0.46, 0.31), (0.38, 0.31), (0.36, 0.45), (0.44, 0.55), (0.54, 0.31), (0.57, 0.45),
        (0.60, 0.56), (0.43, 0.58), (0.62, 0.60), (0.62, 0.85), (0.51, 0.58), (0.70, 0.60), (0.70, 0.85),
        (0.44, 0.18), (0.48, 0.18), (0.42, 0.19), (0.50, 0.19),
    ],
}  # fmt: skip


@dataclass(frozen=True)
class DetectedPose:
    """Result of one detection: the condition image (cropped to the upload's aspect ratio),
    the keypoints of each person (normalised x, y; None where a part was not found)."""

    image: Image.Image
    people: list[list[tuple[float, float] | None]]
    latency_ms: float


def _body_class():
    from controlnet_aux.open_pose.body import Body

    return Body


def ov_body_network(compiled_model):
    """The compiled OpenVINO body network behind the PyTorch module's interface."""
    import torch

    class OVBodyNetwork(torch.nn.Module):
        """`forward(image) -> (pafs, heatmaps)` as torch tensors, computed by OpenVINO.

        controlnet_aux's `Body` asks the module for its device through `parameters()`, so
        it carries one empty parameter.
        """

        def __init__(self, compiled):
            super().__init__()
            self.compiled = compiled
            self.anchor = torch.nn.Parameter(torch.empty(0), requires_grad=False)
            self.input_shape = tuple(compiled.input(0).get_shape())

        def forward(self, image):
            if tuple(image.shape) != self.input_shape:
                raise ValueError(f"The body network takes {self.input_shape} images, got {tuple(image.shape)}.")
            # One infer request per call: requests are not shared between threads.
            outputs = self.compiled.create_infer_request().infer({0: image.numpy()})
            pafs, heatmaps = (outputs[self.compiled.output(i)] for i in (0, 1))
            return torch.from_numpy(np.array(pafs)), torch.from_numpy(np.array(heatmaps))

    return OVBodyNetwork(compiled_model)


def load_body_network(weights: Path):
    """controlnet_aux's body network with weights loaded safely (`weights_only=True`)."""
    import torch
    from controlnet_aux.open_pose import util
    from controlnet_aux.open_pose.model import bodypose_model

    model = bodypose_model()
    model.load_state_dict(util.transfer(model, torch.load(weights, map_location="cpu", weights_only=True)))
    return model.eval()


def body_estimator(network):
    """controlnet_aux's `Body` around `network` (PyTorch module or `ov_body_network`).

    `Body.__init__` loads a checkpoint with `torch.load` defaults; the network here is
    already loaded (safely, by `load_body_network`), so it is attached
    directly.
    """
    body = _body_class().__new__(_body_class())
    body.model = network
    return body


class PoseDetector:
    """OpenPose body keypoints and the ControlNet condition image for a photo.

    `resolution` is the square the photo is letterboxed into (the ControlNet's input
    size), so keypoints, drawing and generation all share one frame.
    """

    def __init__(self, network, resolution: int):
        """`network`: the body network (a torch module, or `ov_body_network`'s), or a function that makes it
        when the first photo comes (controlnet_aux and torch are imported then, not before)."""
        self._network = network
        self._detector = None
        self.resolution = resolution

    @property
    def detector(self):
        """controlnet_aux's `OpenposeDetector` around the network, made on first use."""
        if self._detector is None:
            from controlnet_aux import OpenposeDetector

            network = self._network() if inspect.isfunction(self._network) else self._network
            self._detector = OpenposeDetector(body_estimator(network))
        return self._detector

    def __call__(self, photo: Image.Image) -> DetectedPose:
        from controlnet_aux.open_pose import draw_poses

        start = time.perf_counter()
        framed = letterbox(photo, self.resolution)
        poses = self.detector.detect_poses(np.asarray(framed.image))
        latency_ms = (time.perf_counter() - start) * 1000
        if not poses:
            raise ValueError(
                "No person was found in the image. Use a photo where one person's body is clearly visible "
                "(head, shoulders and hips), or pick a preset pose."
            )
        canvas = draw_poses(poses, self.resolution, self.resolution, draw_body=True, draw_hand=False, draw_face=False)
        people = [[(k.x, k.y) if k is not None else None for k in pose.body.keypoints] for pose in poses]
        return DetectedPose(framed.crop(Image.fromarray(canvas)), people, latency_ms)


def draw_keypoints(keypoints: list[tuple[float, float] | None], width: int, height: int) -> Image.Image:
    """A pose condition image from one person's normalised keypoints, drawn by controlnet_aux."""
    from controlnet_aux.open_pose import PoseResult, draw_poses
    from controlnet_aux.open_pose.body import BodyResult, Keypoint

    points = [Keypoint(x, y) if (x, y) != (None, None) else None for x, y in (k or (None, None) for k in keypoints)]
    pose = PoseResult(BodyResult(points, total_score=float(len(points)), total_parts=len(points)), None, None, None)
    return Image.fromarray(draw_poses([pose], height, width, draw_body=True, draw_hand=False, draw_face=False))


@cache
def presets(size: int = 512) -> dict[str, Image.Image]:
    """Preset pose images, name -> image (drawn from `PRESET_KEYPOINTS`; also saved in assets/poses)."""
    return {name: draw_keypoints(points, size, size) for name, points in PRESET_KEYPOINTS.items()}


def fit_condition(pose_image: Image.Image, resolution: int) -> Letterbox:
    """A pose image of any aspect ratio on a black square of the model's size."""
    return letterbox(pose_image, resolution, fill=(0, 0, 0))


def save_presets(folder: Path = PRESETS_DIR, size: int = 512) -> dict[str, Path]:
    """The preset PNGs, name -> path; drawn into `folder` when missing (a temporary
    folder if that is read-only)."""
    import tempfile

    paths = {name: folder / f"{name.replace(' ', '-')}.png" for name in PRESET_KEYPOINTS}
    if all(p.is_file() for p in paths.values()):
        return paths
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return save_presets(Path(tempfile.mkdtemp(prefix="poses-")), size)
    for name, image in presets(size).items():
        image.save(paths[name], optimize=True)
    return paths


if __name__ == "__main__":
    for name, path in save_presets().items():
        print(f"{name}: {path}")

"""Images in and out (`core.images`), the pose presets, and the ControlNet source layout, without a model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.core import images
from pipelines.models.pose import PRESET_KEYPOINTS, draw_keypoints, presets, save_presets


def test_presets_render():
    paths = save_presets()
    assert set(paths) == set(PRESET_KEYPOINTS)
    for name, path in paths.items():
        stored = np.asarray(Image.open(path).convert("RGB"))
        drawn = np.asarray(presets(512)[name])
        np.testing.assert_array_equal(stored, drawn)  # the committed PNGs are what the code draws
        assert 0.01 < (drawn.sum(axis=2) > 0).mean() < 0.3  # a skeleton, not an empty or full canvas
    # A missing keypoint is left out of the drawing.
    points = list(PRESET_KEYPOINTS["standing"])
    partial = draw_keypoints([*points[:4], None, *points[5:]], 64, 64)
    assert np.asarray(partial).sum() < np.asarray(draw_keypoints(points, 64, 64)).sum()


def test_images_convert_modes_and_downscale():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert images.load_image(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    gray = images.load_image(Image.new("L", (10, 10), 77))
    assert gray.mode == "RGB" and gray.getpixel((3, 3)) == (77, 77, 77)
    assert images.load_image(np.zeros((5, 7), np.uint8)).size == (7, 5)
    big = images.load_image(Image.new("RGB", (6000, 1000)))
    assert big.size == (images.MAX_WORKING_SIDE, 341)


def test_letterbox_and_crop_keep_the_aspect_ratio():
    framed = images.letterbox(Image.new("RGB", (100, 50), (255, 255, 255)), 64)
    assert framed.image.size == (64, 64) and framed.box == (0, 16, 64, 48)
    assert framed.image.getpixel((0, 0)) == (0, 0, 0) and framed.image.getpixel((32, 32)) == (255, 255, 255)
    assert framed.crop(Image.new("RGB", (512, 512))).size == (64, 32)


def test_upload_limits_and_non_images(tmp_path, monkeypatch):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(ValueError, match="not an image this app can read"):
        images.load_image(text)
    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 6000)).save(huge)  # 48 megapixels, a few kB on disk
    with pytest.raises(ValueError, match="megapixels"):
        images.load_image(huge)
    monkeypatch.setattr(images, "MAX_UPLOAD_BYTES", 1000)
    heavy = tmp_path / "heavy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(heavy)
    with pytest.raises(ValueError, match="MB; the limit"):
        images.load_image(heavy)
    with pytest.raises(ValueError, match="No photo was given"):
        images.load_image(None, "photo")


def test_hub_sources_are_assembled_from_three_repos(tmp_path):
    from pipelines.build.controlnet_export import assemble_hub_source
    from pipelines.core.registry import CONTROLNET_POSE

    asked = {}

    def snapshot(repo, patterns):
        asked[repo] = patterns
        folder = tmp_path / "hub" / repo.replace("/", "--")
        for part in ("text_encoder", "tokenizer", "unet", "vae", "scheduler"):
            (folder / part).mkdir(parents=True, exist_ok=True)
        return folder

    source = assemble_hub_source(CONTROLNET_POSE, snapshot, tmp_path / "source")
    assert set(asked) == {
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "lllyasviel/sd-controlnet-openpose",
        "lllyasviel/Annotators",
    }
    assert asked["lllyasviel/Annotators"] == ["body_pose_model.pth"]  # not the whole annotator repo
    assert (source / "unet").resolve() == (tmp_path / "hub" / "stable-diffusion-v1-5--stable-diffusion-v1-5" / "unet")
    assert (source / "controlnet").resolve() == tmp_path / "hub" / "lllyasviel--sd-controlnet-openpose"
    assert assemble_hub_source(CONTROLNET_POSE, lambda repo, patterns: None, tmp_path / "none") is None

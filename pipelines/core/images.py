"""Images in and out of the image tabs: checked, converted, fitted to a square model input.

- Uploads are capped in bytes (`MAX_UPLOAD_BYTES`) and pixels (`MAX_UPLOAD_PIXELS`), and
  the pixel count is read from the header, before anything is decoded. `limit_decoders`
  sets Pillow's own bomb check to the same cap, for any other code that opens an image.
- Only the first frame of an animated or multi-page file is ever decoded, so the frame
  count costs nothing: a GIF of thousands of frames takes as long as one of them.
- A file that is not an image is refused with a sentence that names no server path,
  never a traceback.
- EXIF rotation is applied; RGBA is composited on white, grayscale/palette/CMYK become RGB.
- Very large images are downscaled (longest side `MAX_WORKING_SIDE`) right after decoding.
- Any aspect ratio: `letterbox` resizes the image to fit a square of the model's size and
  pads the rest; `Letterbox.crop` cuts the same box out of a model output, so results keep
  the upload's aspect ratio (longest side = the model size).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
MAX_WORKING_SIDE = 2048
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


@dataclass(frozen=True)
class Letterbox:
    """A square canvas of `size` with the image placed in `box` (left, top, right, bottom)."""

    image: Image.Image
    box: tuple[int, int, int, int]
    size: int

    def crop(self, output: Image.Image) -> Image.Image:
        """The part of a model output (any square size) that covers the original image."""
        if output.size != (self.size, self.size):
            output = output.resize((self.size, self.size), Image.Resampling.LANCZOS)
        return output.crop(self.box)


def limit_decoders() -> None:
    """Pillow refuses images over `MAX_UPLOAD_PIXELS` (warns) and twice that (raises) when
    it opens them, wherever that happens in the process."""
    Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS


def _too_many_pixels(what: str, width: int | None = None, height: int | None = None) -> ValueError:
    if width and height:
        size = f"is {width}×{height} = {width * height / 1e6:.0f} megapixels"
    else:  # Pillow refused it when opening (twice its cap): the size stays unread
        size = f"has more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
    return ValueError(f"The {what} {size}; the limit is {MAX_UPLOAD_PIXELS / 1e6:.0f}. Use a smaller image.")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparency composited on white (as controlnet_aux's `HWC3` does)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255 if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _downscaled(image: Image.Image, max_side: int) -> Image.Image:
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def check_image(image: Image.Image, what: str = "image") -> Image.Image:
    """An in-memory image checked against the pixel cap, converted to RGB and downscaled."""
    if not isinstance(image, Image.Image):
        raise ValueError(f"Expected an image, got {type(image).__name__}.")
    width, height = image.size
    if width < 1 or height < 1:
        raise ValueError(f"The {what} is empty ({width}×{height} pixels).")
    if width * height > MAX_UPLOAD_PIXELS:
        raise _too_many_pixels(what, width, height)
    return _downscaled(to_rgb(image), MAX_WORKING_SIDE)


def load_image(source: str | os.PathLike | Image.Image | np.ndarray | None, what: str = "image") -> Image.Image:
    """An RGB PIL image from an upload (the app's own copy of it), a PIL image or an array.

    Raises ValueError with a sentence for the person when it is missing, too big, or not
    an image.
    """
    if source is None:
        raise ValueError(f"No {what} was given: upload one (PNG, JPEG or WebP) or pick a preset.")
    if isinstance(source, np.ndarray):
        if (
            source.dtype != np.uint8
            or source.ndim not in (2, 3)
            or (source.ndim == 3 and source.shape[2] not in (1, 3, 4))
        ):
            raise ValueError(f"The {what} array must be uint8 H×W, H×W×3 or H×W×4, got {source.dtype} {source.shape}.")
        source = Image.fromarray(source[:, :, 0] if source.ndim == 3 and source.shape[2] == 1 else source)
    if isinstance(source, Image.Image):
        return check_image(source, what)
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"The uploaded {what} could not be read; upload it again.")
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise ValueError(
            f"The {what} file is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MB. "
            "Use a smaller or more compressed image."
        )
    try:
        with Image.open(path, formats=FORMATS) as opened:  # reads the header only
            width, height = opened.size
            image = None
            if width * height <= MAX_UPLOAD_PIXELS:
                opened.seek(0)  # the first frame; the others are never decoded
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except Image.DecompressionBombError:
        raise _too_many_pixels(what) from None
    except (UnidentifiedImageError, SyntaxError, OSError, EOFError, ValueError):
        # The library's message names the server's copy of the upload: say what the file is instead.
        raise ValueError(
            f"The {what} file is not an image this app can read: upload a PNG, JPEG, WebP, BMP, GIF or TIFF."
        ) from None
    if image is None:
        raise _too_many_pixels(what, width, height)
    return check_image(image, what)


def letterbox(image: Image.Image, size: int, fill: tuple[int, int, int] = (0, 0, 0)) -> Letterbox:
    """Resize `image` to fit a `size`×`size` square (aspect ratio kept) and pad the rest."""
    scale = size / max(image.size)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    canvas = Image.new("RGB", (size, size), fill)
    left, top = (size - width) // 2, (size - height) // 2
    canvas.paste(image.resize((width, height), resample), (left, top))
    return Letterbox(canvas, (left, top, left + width, top + height), size)


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """`left` and `right` in one image, left to right, at `left`'s height (a "Both" request's two images:
    OpenVINO's left, PyTorch's right, each in its own half when both are the same size)."""
    if right.height != left.height:
        right = right.resize((round(right.width * left.height / right.height), left.height), Image.Resampling.LANCZOS)
    both = Image.new("RGB", (left.width + right.width, left.height))
    both.paste(to_rgb(left), (0, 0))
    both.paste(to_rgb(right), (left.width, 0))
    return both

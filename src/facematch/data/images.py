"""Decoding an image file into an RGB PIL image, with every bad case turned into one clear error.

Handled: EXIF rotation, alpha (composited on white), grayscale / palette / CMYK / 16-bit (converted to
RGB), truncated or corrupt files, zero-byte and non-image files, and oversized images (a decompression
bomb guard that refuses more than ``MAX_PIXELS`` pixels before decoding them).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facematch.errors import DataNotFoundError, UnreadableImageError

#: Refuse images above this many pixels (~ 8k x 8k); PIL's own guard only warns below 2x its limit.
MAX_PIXELS = 64_000_000


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image or raise a one-line :class:`FacematchError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"image not found: {path} (check the path or the dataset root)")
    if path.is_dir():
        raise UnreadableImageError(f"{path} is a directory, not an image file")
    if path.stat().st_size == 0:
        raise UnreadableImageError(f"{path} is an empty (0-byte) file; re-copy or delete it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if w * h > max_pixels:
                raise UnreadableImageError(
                    f"{path} is {w}x{h} pixels, over the {max_pixels:,}-pixel limit "
                    "(decompression-bomb guard); downscale it first"
                )
            img.load()
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UnreadableImageError(
            f"{path} is too large to decode safely ({err}); downscale it first"
        ) from None
    except UnidentifiedImageError:
        raise UnreadableImageError(
            f"{path} is not an image file PIL can read (JPEG, PNG, ...); replace or remove it"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UnreadableImageError(
            f"{path} is corrupt or truncated ({err}); re-download or remove it"
        ) from None
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """EXIF-rotate and convert any mode (L, P, LA, RGBA, CMYK, I;16 ...) to 8-bit RGB."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not lose an otherwise good image
        pass
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        arr = (255.0 * (arr - arr.min()) / max(arr.max() - arr.min(), 1.0)).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    return img.convert("RGB")


def load_rgb_array(path: str | os.PathLike) -> np.ndarray:
    """``load_image`` as an ``HxWx3`` uint8 array."""
    return np.asarray(load_image(path), dtype=np.uint8)

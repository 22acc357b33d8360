"""Image files: the one folder scan (:func:`list_images`) and decoding into an RGB PIL image, with every
bad case turned into one clear error.

Handled: EXIF rotation, alpha (composited on white), grayscale / palette / CMYK / 16-bit (converted to
RGB), truncated or corrupt files, zero-byte and non-image files, and oversized images (a decompression
bomb guard that refuses more than ``MAX_PIXELS`` pixels before decoding them).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facematch.errors import DataNotFoundError, UnreadableImageError

#: Refuse images above this many pixels (~ 8k x 8k); PIL's own guard only warns below 2x its limit.
MAX_PIXELS = 64_000_000
#: Refuse image files above this size before reading them (a 64-Mpixel 16-bit RGBA TIFF is 512 MB).
MAX_IMAGE_BYTES = 512 << 20
#: The only decoders PIL may pick for a file (an allow list: the formats of IMAGE_SUFFIXES; Pillow would
#: otherwise try each of its ~40 readers on any file, EPS through Ghostscript among them).
FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF", "PPM")
#: What counts as an image file when a folder is scanned (lower-case suffixes, matched case-insensitively).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


def is_image_name(name: str) -> bool:
    """Whether a file name is scanned as an image: a known suffix, not hidden (``.name``)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def list_images(root: str | os.PathLike) -> list[str]:
    """Every image file under ``root`` (:func:`is_image_name`; hidden folders skipped), as sorted POSIX
    paths relative to ``root``. The one scan behind the identity index and ``prepare``."""
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"dataset folder not found: {root} (pass the folder holding <identity>/<file>)")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        out += [(rel_dir / f).as_posix() for f in filenames if is_image_name(f)]
    return sorted(out)


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image or raise a one-line :class:`FacematchError` naming the file."""
    path = Path(path)
    try:  # one open and one read: decoding from memory skips PIL's many small reads and extra stats
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_IMAGE_BYTES:
                raise UnreadableImageError(f"{path} is a {size:,}-byte file, over the {MAX_IMAGE_BYTES:,}-byte limit "
                                           "for an image; downscale or re-encode it")
            data = fh.read(size + 1)  # what fstat said (a buffered read allocates what it is asked for)
    except FileNotFoundError:
        raise DataNotFoundError(f"image not found: {path} (check the path or the dataset root)") from None
    except IsADirectoryError:
        raise UnreadableImageError(f"{path} is a directory, not an image file") from None
    except OSError as err:
        raise UnreadableImageError(f"{path} cannot be read ({err.strerror or err})") from None
    return load_image_bytes(data, str(path), max_pixels)


def load_image_bytes(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``data`` (a file's bytes: an upload, a read file) as an RGB image, or raise a one-line
    :class:`UnreadableImageError` naming it ``name``; the one decoder behind :func:`load_image`."""
    if not data:
        raise UnreadableImageError(f"{name} is an empty (0-byte) file; re-copy or delete it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            w, h = img.size
            if w * h > max_pixels:
                raise UnreadableImageError(
                    f"{name} is {w}x{h} pixels, over the {max_pixels:,}-pixel limit "
                    "(decompression-bomb guard); downscale it first"
                )
            img.load()
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UnreadableImageError(
            f"{name} is too large to decode safely ({err}); downscale it first"
        ) from None
    except UnidentifiedImageError:
        raise UnreadableImageError(
            f"{name} is not an image file facematch reads ({', '.join(FORMATS)}); replace or remove it"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UnreadableImageError(
            f"{name} is corrupt or truncated ({err}); re-download or remove it"
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


def source_mode(path: str | os.PathLike) -> str | None:
    """PIL mode of the file as stored (``RGB``, ``L``, ``RGBA``, ``CMYK``...), read from its header only."""
    try:
        with Image.open(path, formats=FORMATS) as im:
            return im.mode
    except Exception:
        return None

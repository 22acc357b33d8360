"""The aligned-crop cache: one aligned face per source image, on disk, resumable, atomic, tied to its source.

Layout of a cache folder ``OUT``:

- Keyed (what ``FaceSource(mode="align")`` and ``facematch-data prepare SRC`` use, :meth:`AlignedCache.under`):
  ``OUT = <cache_dir>/<template>-<digest>``, the digest covering the cache format, template, detector
  settings and resolved source folder, so other settings or another source folder get a folder of their
  own: a keyed cache never refuses settings. A folder named by the caller (``AlignedCache(OUT, ...)``,
  ``prepare SRC OUT``) holds one setting and refuses others with a one-line error naming the fix.
- ``OUT/<identity>/<file>.png`` for source ``SRC/<identity>/<file>`` (the full source name is kept, so
  ``a.jpg`` and ``a.png`` never collide): the crop, lossless PNG, so a warm cache and on-the-fly alignment
  feed the network the same pixels. Each PNG carries its own record in a ``facematch`` text chunk (status
  ``ok``/``fallback``, number of faces, detection probability, box, landmarks, source colour mode, and
  ``src_size`` / ``src_mtime_ns``: the size and modification time of the source file it was made from),
  so no separate index can disagree with the files.
- A crop is served only while its source file still has the recorded size and modification time;
  otherwise it is made again (``AlignedCache.stats["stale_remade"]``). A crop whose source file is gone is
  never served.
- Every file is written atomically (:func:`facematch.utils.io.atomic_write`); ``OUT/manifest.json``
  (:mod:`facematch.faces.manifest`) records what the crops depend on.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, PngImagePlugin

from facematch.errors import FacematchError
from facematch.faces.align import AlignResult, FaceAligner
from facematch.faces.manifest import (
    CACHE_FORMAT,
    MANIFEST,
    differences,
    old_format_error,
    read_manifest,
    versions,
    write_manifest,
)
from facematch.utils.io import atomic_write, digest, file_stamp, resolved, stamp_before_reading

CROP_SUFFIX = ".png"
RECORD_KEY = "facematch"


# ---------------------------------------------------------------------------------------------------
# crop files and their records


def check_rel(rel: str) -> str:
    """A source path relative to the dataset root, refused if it could escape the cache folder."""
    p = PurePosixPath(str(rel).replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise FacematchError(f"image path '{rel}' must be relative to the dataset root, without '..'")
    return p.as_posix()


def crop_path(out_root: str | os.PathLike, rel: str) -> Path:
    """Where the crop of source ``rel`` lives: ``OUT/<rel>.png``."""
    return Path(out_root) / (check_rel(rel) + CROP_SUFFIX)


def write_crop(path: str | os.PathLike, result: AlignResult, stamp: tuple[int, int]) -> Path:
    """Atomically write ``result`` as a PNG carrying its record, and the ``(st_size, st_mtime_ns)``
    ``stamp`` of the source file it was made from, in a ``facematch`` text chunk."""
    record = {**result.record(), "src_size": int(stamp[0]), "src_mtime_ns": int(stamp[1])}
    info = PngImagePlugin.PngInfo()
    info.add_text(RECORD_KEY, json.dumps(record, separators=(",", ":")))
    img = Image.fromarray(np.ascontiguousarray(result.image, dtype=np.uint8), mode="RGB")
    # PNG level 1 and no fsync: less than half the write time of level 6 + fsync (files slightly larger); a crop
    # damaged by a power cut fails to decode and is made again (AlignedCache.get)
    return atomic_write(path, lambda fh: img.save(fh, format="PNG", pnginfo=info, compress_level=1), durable=False)


def _record(info: dict) -> dict | None:
    """The record a crop's PNG carries (an object), or ``None`` (none, or not a JSON object)."""
    try:
        record = json.loads(info.get(RECORD_KEY) or "null")
    except (ValueError, RecursionError, TypeError):
        return None
    return record if isinstance(record, dict) else None


def read_record(path: str | os.PathLike) -> dict | None:
    """The record stored in a crop's PNG, or ``None`` if the file is unreadable or carries none."""
    try:
        with Image.open(path, formats=("PNG",)) as im:
            return _record(im.info)
    except (OSError, ValueError, SyntaxError):
        return None


def record_stamp(record: dict | None) -> tuple[int, int] | None:
    """The source-file stamp a crop's record carries (``None`` for a record without one)."""
    if not record or not isinstance(record.get("src_size"), int) or not isinstance(record.get("src_mtime_ns"), int):
        return None
    return record["src_size"], record["src_mtime_ns"]


# ---------------------------------------------------------------------------------------------------
# the cache


class AlignedCache:
    """Aligned crops of ``src_root``'s images under ``root``, made on first use, re-made when a source changes.

    ``AlignedCache(root, "arcface_112x112", src_root, select="largest")``; keyword arguments are those of
    :class:`~facematch.faces.align.FaceAligner`. ``get(rel)`` returns the ``HxWx3`` uint8 crop of
    ``src_root/rel``; a missing or stale crop is aligned, written atomically and returned (an unreadable
    source raises :class:`~facematch.errors.UnreadableImageError`, a missing one
    :class:`~facematch.errors.DataNotFoundError`). ``stats`` counts crops ``served`` from disk, ``made``
    and, of those, ``stale_remade`` (the source file changed). :meth:`under` puts the cache in its keyed
    folder. Picklable: DataLoader workers each build their own detector on first miss.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        template: str,
        src_root: str | os.PathLike | None = None,
        **aligner_kwargs,
    ):
        self.root = Path(root)
        self.src_root = Path(src_root) if src_root is not None else None
        self.aligner_kwargs = dict(aligner_kwargs)
        self._aligner: FaceAligner | None = None
        probe = FaceAligner(template, **self.aligner_kwargs)  # validates names; builds no model
        self.template = probe.template.name
        self.crop_wh = tuple(probe.template.size[::-1])  # (width, height): a served crop is exactly this size
        self.settings = probe.settings
        #: What every crop depends on, and the digest of it that names a keyed cache folder.
        self.components = {"format": CACHE_FORMAT, **self.settings,
                           "src_root": resolved(src_root) if src_root is not None else None}
        self.key = f"{self.template}-{digest(self.components)}"
        self.stats: Counter = Counter()
        self._checked = False

    @classmethod
    def under(cls, cache_dir: str | os.PathLike, template: str, src_root: str | os.PathLike,
              **aligner_kwargs) -> "AlignedCache":
        """The cache of ``src_root``'s crops with these settings, in its own folder ``cache_dir/<key>``."""
        cache = cls(cache_dir, template, src_root, **aligner_kwargs)
        cache.root = Path(cache_dir) / cache.key
        return cache

    # -- consistency --------------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse an old-format cache, or one made with another template, detector settings or source
        folder (only a folder named by the caller can be: a keyed folder's name is its settings); stamp a
        new one."""
        if self._checked:
            return
        manifest = read_manifest(self.root)
        fix = ("a named cache folder holds one setting and source; use another folder, or the keyed one "
               "(one per setting and source: `facematch-data prepare SRC` without OUT, AlignedCache.under)")
        if manifest is not None:
            if manifest.get("format") != CACHE_FORMAT:
                raise old_format_error(self.root, manifest.get("format"))
            diff = differences({k: manifest.get(k) for k in self.settings}, self.settings)
            if diff:
                raise FacematchError(f"aligned cache {self.root} was made with {', '.join(diff)}: pass those "
                                     f"settings; or {fix}")
            made_from = manifest.get("src_root")
            if self.src_root is None and made_from:
                self.src_root = Path(made_from)
            elif made_from != self.components["src_root"]:
                raise FacematchError(
                    f"aligned cache {self.root} holds crops of {made_from}, not {self.components['src_root']}; {fix}"
                )
        elif self.src_root is None:
            raise FacematchError(f"{self.root} is not an aligned-crop cache (no {MANIFEST}) and no source folder was given")
        else:
            self.write_manifest({"complete": False})
        self._checked = True

    def manifest_base(self) -> dict:
        return {
            **self.components,
            "key": self.key,
            "crop_format": "png",
            "crop_name": "<identity>/<file>.png",
            "versions": versions(),
        }

    def write_manifest(self, extra: dict) -> None:
        write_manifest(self.root, {**self.manifest_base(), **extra})

    # -- crops --------------------------------------------------------------------------------------
    @property
    def aligner(self) -> FaceAligner:
        if self._aligner is None:
            self._aligner = FaceAligner(self.template, **self.aligner_kwargs)
        return self._aligner

    def path(self, rel: str) -> Path:
        return crop_path(self.root, rel)

    def source_path(self, rel: str) -> Path:
        if self.src_root is None:
            raise FacematchError(f"{rel}: the aligned cache {self.root} has no source folder to check or align it from")
        return self.src_root / check_rel(rel)

    def has(self, rel: str) -> bool:
        return self.path(rel).is_file()

    def record(self, rel: str) -> dict | None:
        return read_record(self.path(rel))

    def get(self, rel: str) -> np.ndarray:
        """The crop of ``rel`` (``HxWx3`` uint8); aligned and stored first if it is not cached yet or its
        source file changed since (one ``stat`` of the source per call)."""
        self.check()
        try:
            stamp = file_stamp(self.source_path(rel))
        except OSError:
            return self.make(rel).image  # reading the source names the problem (missing, a folder...)
        try:
            with Image.open(self.path(rel), formats=("PNG",)) as im:  # a crop: a PNG of the template's size
                if record_stamp(_record(im.info)) == stamp and im.size == self.crop_wh:
                    crop = np.asarray(im.convert("RGB"), dtype=np.uint8)
                    self.stats["served"] += 1
                    return crop
            self.stats["stale_remade"] += 1
        except FileNotFoundError:
            pass
        except (OSError, ValueError, SyntaxError):
            pass  # damaged on disk (not by us: writes are atomic); make it again
        return self.make(rel).image

    def make(self, rel: str) -> AlignResult:
        """Align ``src_root/rel`` now and store it with its source file's stamp (overwriting any cached crop)."""
        self.check()
        src = self.source_path(rel)
        stamp = stamp_before_reading(src)
        result = self.aligner.align_path(src)  # raises the user error for a missing or unreadable file
        write_crop(self.path(rel), result, stamp)
        self.stats["made"] += 1
        return result

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_aligner"] = None
        return state

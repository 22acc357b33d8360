"""FaceSource: an image path -> a uint8 crop in the template (and size) the backbone expects.

Modes:
- ``center``: raw photos whose face is roughly centred (LFW deep-funneled): keep the central
  ``center_crop`` fraction of the shorter side, widened to the template's aspect, resized.
- ``prealigned``: files already aligned to ``template`` (e.g. lfw-aligned-112 is arcface_112x112); an
  exact crop converts between templates that differ only by a crop, otherwise the crop is resized.
- ``align``: MTCNN detection + 5-point similarity alignment onto the backbone's template, through the
  on-disk aligned cache (:mod:`facematch.faces.crop_cache`), created on first use in its own folder under
  ``cache_dir`` per template, detector settings and source folder (``<template>-<digest>``).

``degrade`` (:mod:`facematch.data.degrade`, ``data.degrade``) makes every crop look like a low-quality
photo, deterministically per image and ``draw`` (:meth:`FaceSource.with_draw`; draw ``None``: a random one
of the configured draws per call, for training on images).

``key`` names the preprocessing (the degradation and its draw included), so caches of crops or embeddings
never mix two preprocessings; ``root`` is the source folder the caches tie their entries to.

A packed dataset (:mod:`facematch.data.shards`, ``facematch-data pack``) is read through a ``reader``
(``rel -> the file's bytes``) instead of files under ``root``; everything after the bytes (decode, crop,
degradation) is this class's code for both, so a packed set serves the folder tree's very pixels. Its
``root`` is the packed folder (caches never mix with the folder tree's), its ``key`` carries the pack's
content digest, and ``stamp_root`` is None: cache entries are tied to that digest, not to file stamps.
An insightface validation file (:mod:`facematch.data.bin_set`, ``data=bin``) is read the same way: its
reader serves each image's encoded bytes by name, its ``key`` carries the file's sha256.
:func:`source_from_config` is the one place a FaceSource is built from configuration (training's data
module, facematch-eval, per-fold scoring).
"""

from __future__ import annotations

import copy
import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from facematch.data.bin_set import is_bin, open_bin
from facematch.data.degrade import Degradation
from facematch.faces.images import load_image, load_image_bytes
from facematch.errors import FacematchError
from facematch.data.shards import is_packed, open_packed
from facematch.faces.templates import crop_between, get_template

log = logging.getLogger(__name__)

MODES = ("center", "prealigned", "align")
#: The keys of ``data.preprocess``; ``align`` is the alignment config (``conf/align/``).
PREPROCESS_KEYS = ("mode", "template", "center_crop", "align")


def center_crop(img: Image.Image, out_hw: tuple[int, int], fraction: float) -> np.ndarray:
    """Central crop of ``fraction`` x the shorter side, at the aspect of ``out_hw``, resized to it."""
    h_out, w_out = out_hw
    w, h = img.size
    ch = fraction * min(w, h)
    cw = ch * w_out / h_out
    cx, cy = w / 2.0, h / 2.0
    box = (cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)
    return np.asarray(img.resize((w_out, h_out), Image.BILINEAR, box=box), dtype=np.uint8)


class FaceSource:
    def __init__(
        self,
        root: str | os.PathLike,
        template: str,
        mode: str = "center",
        src_template: str | None = None,
        center_crop: float = 0.5,
        cache_dir: str | os.PathLike | None = None,
        degrade: Degradation | None = None,
        reader=None,
        **align_kwargs,
    ):
        if mode not in MODES:
            raise FacematchError(f"data.preprocess.mode={mode!r} is unknown; choose one of: {', '.join(MODES)}")
        if mode == "prealigned" and not src_template:
            raise FacematchError(
                "data.preprocess.mode=prealigned needs data.preprocess.template=NAME "
                "(the template the files are aligned to, e.g. arcface_112x112)"
            )
        if reader is not None and mode == "align":
            raise FacematchError(
                f"{root} is a packed dataset: it cannot be detected and aligned on the fly (mode align / "
                "embed.align_raw); align the source folder first (`facematch-data prepare SRC CROPS --template T`), "
                "pack CROPS, and read it with data=packed (or set embed.align_raw=false)")
        self.reader = reader
        self.root = Path(root) if reader is None else reader.root
        self.template = get_template(template)
        self.src_template = get_template(src_template) if src_template else None
        self.mode = mode
        self.center_fraction = float(center_crop)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.align_kwargs = align_kwargs
        self.degrade = degrade if degrade is not None and degrade.active else None
        self.draw: int | None = 0
        self._cache = None
        if mode == "align":  # bad detector settings fail here, before any image is read
            from facematch.faces.align import FaceAligner

            FaceAligner(self.template.name, **align_kwargs)

    @property
    def key(self) -> str:
        if self.mode == "center":
            base = f"center{self.center_fraction:g}-{self.template.name}"
        elif self.mode == "prealigned":
            base = f"prealigned-{self.src_template.name}-{self.template.name}"
        else:
            base = f"align-{self.template.name}"
        if self.reader is not None:
            base = f"{base}-{self.reader.key_tag}{self.reader.content_digest[:12]}"
        if self.degrade is None:
            return base
        return f"{base}-{self.degrade.name()}-draw{'random' if self.draw is None else self.draw}"

    @property
    def stamp_root(self):
        """The folder whose files cache entries are stamped against: ``root``, or None for a packed set
        (immutable; its content digest is in ``key``)."""
        return self.root if self.reader is None else None

    @property
    def degrade_description(self) -> dict | None:
        """The degradation settings and draw (None without one): part of the embedding cache key."""
        return None if self.degrade is None else {**self.degrade.describe(), "draw": self.draw}

    def with_draw(self, draw: int | None) -> "FaceSource":
        """This source serving degradation draw ``draw`` (0: evaluation's; None: a random one of
        ``degrade.draws`` per call, for training on images). Without a degradation, this source itself."""
        if self.degrade is None:
            return self
        if draw is not None and not 0 <= draw < self.degrade.draws:
            raise ValueError(f"draw {draw} is out of range (data.degrade.draws={self.degrade.draws})")
        other = copy.copy(self)
        other.draw = draw
        return other

    def undegraded(self) -> "FaceSource":
        """This source serving the original crops (no degradation)."""
        other = copy.copy(self)
        other.degrade, other.draw = None, 0
        return other

    def __call__(self, rel: str) -> np.ndarray:
        crop = self._crop(rel)
        if self.degrade is None:
            return crop
        draw = random.randrange(self.degrade.draws) if self.draw is None else self.draw
        return self.degrade(crop, rel, draw)

    def _crop(self, rel: str) -> np.ndarray:
        if self.mode == "align":
            return self._aligned(rel)
        img = load_image(self.root / rel) if self.reader is None else load_image_bytes(self.reader(rel), self.reader.name(rel))
        if self.mode == "center":
            return center_crop(img, self.template.size, self.center_fraction)
        arr = np.asarray(img, dtype=np.uint8)
        out = crop_between(arr, self.src_template.name, self.template.name)
        if out is None or out.shape[:2] != self.template.size:
            h, w = self.template.size
            out = np.asarray(Image.fromarray(arr).resize((w, h), Image.BILINEAR), dtype=np.uint8)
        return np.ascontiguousarray(out)

    @property
    def crop_cache(self):
        """Mode ``align``: the :class:`~facematch.faces.crop_cache.AlignedCache` crops are read from."""
        return self._crop_cache()

    def _crop_cache(self):
        if self._cache is None:
            from facematch.faces.crop_cache import AlignedCache

            self._cache = AlignedCache.under(self.cache_dir or self.root.parent / ".aligned", self.template.name,
                                             self.root, **self.align_kwargs)
        return self._cache

    @property
    def aligned_cache_root(self) -> Path:
        """Mode ``align``: the crop cache folder, keyed by the template, detector settings and source root."""
        return self._crop_cache().root

    def _aligned(self, rel: str) -> np.ndarray:
        return self._crop_cache().get(rel)

    def prepare(self, rels, *, workers: int | None = None, progress: bool = True) -> dict | None:
        """Mode ``align``: detect and align every image of ``rels`` not cached yet, in parallel on all cores
        (:func:`facematch.faces.prepare.prepare`), so that reading a crop afterwards is only a decode.
        Other modes have nothing to prepare (None)."""
        if self.mode != "align":
            return None
        from facematch.faces.prepare import prepare

        manifest = prepare(self.root, self.aligned_cache_root, self.template.name, rels, workers=workers,
                           progress=progress, **self.align_kwargs)
        return {k: manifest.get(k) for k in ("counts", "elapsed_s", "images_per_s", "workers")}

    def __getstate__(self):  # DataLoader workers build their own detector
        state = dict(self.__dict__)
        state["_cache"] = None
        return state


def _plain(node):
    """Nested mappings and lists (a Hydra ``DictConfig`` included, resolved on access) as dicts and lists."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        return [_plain(v) for v in node]
    return node


def source_from_config(root: str | os.PathLike, template: str, preprocess: Mapping | None = None, *,
                       align_raw: bool = False, degrade: Mapping | None = None) -> FaceSource:
    """The FaceSource of the dataset folder ``root`` in the backbone's ``template``, as ``preprocess``
    (``data.preprocess``: ``mode``, ``template``, ``center_crop``, ``align``) says.

    ``align`` is the one alignment config (``conf/align/mtcnn.yaml``: detector settings and ``cache_dir``),
    used in mode ``align``. ``align_raw`` turns ``center`` (raw photos) into ``align`` with those settings:
    the crops ``facematch-eval`` scores (``embed.align_raw``), and what scoring after training asks for to
    score the same crops. ``prealigned`` and ``align`` are used as they are. ``degrade`` is
    ``data.degrade`` (:meth:`Degradation.from_config`), applied to every crop served.
    """
    pp = _plain(preprocess or {})
    unknown = sorted(set(pp) - set(PREPROCESS_KEYS))
    if unknown:
        raise FacematchError(
            f"data.preprocess.{unknown[0]} is not a preprocessing option (valid: {', '.join(PREPROCESS_KEYS)}); "
            "detection and alignment settings are the `align` group's: align.select, align.cache_dir, ... "
            "(conf/align/mtcnn.yaml)"
        )
    # a packed set or an insightface .bin file: its bytes through its reader; its recorded preprocessing by default
    reader = open_bin(root) if is_bin(root) else open_packed(root) if is_packed(root) else None
    if reader is not None:
        recorded = reader.preprocess
        if not pp.get("mode"):
            pp["mode"], pp["template"] = recorded["mode"], recorded.get("template")
        elif (pp.get("mode"), pp.get("template") or None) != (recorded["mode"], recorded.get("template")):
            log.warning("%s holds images as %s; data.preprocess says mode=%s template=%s", root, recorded,
                        pp.get("mode"), pp.get("template"))
    mode = pp.get("mode") or "center"
    if mode == "center" and align_raw:
        mode = "align"
    align = dict(pp.get("align") or {})
    cache_dir = align.pop("cache_dir", None)
    detector = {k: v for k, v in align.items() if v is not None} if mode == "align" else {}
    return FaceSource(root, template, mode=mode, src_template=pp.get("template"),
                      center_crop=pp.get("center_crop", 0.5), cache_dir=cache_dir, reader=reader,
                      degrade=Degradation.from_config(_plain(degrade) if degrade is not None else None), **detector)

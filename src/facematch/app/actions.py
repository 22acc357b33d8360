"""What the two forms of ``facematch-app`` do, apart from the web: read an upload, compare two photos, search
the gallery, each returning the result's HTML (:mod:`facematch.app.pages`) or raising a one-line
:class:`~facematch.errors.FacematchError` the page shows. They run in a worker thread, the model under
:attr:`AppState.lock` (one request on it at a time)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facematch.app import pages
from facematch.app.probe_model import cross_similarity
from facematch.embedding.photos import accepted, pair_similarity
from facematch.errors import FacematchError, MultipleFacesError

DEFAULT_MAX_UPLOAD_MB = 10.0
SELECTS = ("largest", "nearest_center")
MAX_TOP_K = 50


class UploadError(FacematchError):
    """A form the page cannot use: a file missing, over the size limit, or a malformed request."""


@dataclass
class AppState:
    """What every request uses: the one model (behind a lock: one request on it at a time), the decision
    threshold, the gallery (or None) and the limits.

    The gallery is the newest published version: :meth:`current_gallery` reloads it when another version
    was committed since it was read (an enrolment or removal while the page is served), so a search never
    answers from a gallery older than the one on disk when it started."""

    embedder: Any
    decision: dict  # compare's threshold (1:1)
    model_text: str
    gallery: Any = None
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    top_k: int = 5
    lock: threading.Lock = field(default_factory=threading.Lock)
    search_decision: dict | None = None  # the gallery search's threshold (1:N, when calibrated)
    quality: Any = None  # a facematch.app.quality.QualityGate: each face's quality, the "cannot decide" threshold
    probe: Any = None  # --probe-ckpt: the second photo / the photo searched embedded by it (app/probe_model.py)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def current_gallery(self):
        """The gallery, reloaded first when its folder now holds another version (refusing another model)."""
        with self.lock:
            g = self.gallery
            if g is not None and g.changed():
                g = type(g).open(g.root)
                g.check_model(self.embedder.model.fingerprint, self.embedder.settings)
                self.gallery = g
            return g

    @property
    def gallery_text(self) -> str | None:
        """What the page says of the gallery it searches (``None``: no gallery)."""
        g = self.gallery
        if g is None:
            return None
        return (f"gallery {g.root}: {len(g.names)} identities, {len(g)} faces (version {g.manifest['generation']}; "
                "reloaded when the gallery changes)")


def read_upload(form, field_name: str, label: str, state: AppState) -> tuple[bytes, str]:
    """``(bytes, file name)`` of one uploaded file, or an :class:`UploadError` saying what is wrong."""
    up = form.get(field_name)
    name = Path(str(getattr(up, "filename", "") or "")).name
    if up is None or isinstance(up, str) or not name:
        raise UploadError(f"choose a file for {label}")
    data = up.file.read(state.max_upload_bytes + 1)
    if len(data) > state.max_upload_bytes:
        raise UploadError(f"{name} is larger than the {state.max_upload_mb:g} MB upload limit; use a smaller "
                          "photo (or start facematch-app with a larger --max-upload-mb)")
    return data, name


def decode(data: bytes, name: str):
    from facematch.faces.images import load_image_bytes

    return load_image_bytes(data, name)


def faces_of(state: AppState, image, name: str, select: str | None = None, all_faces: bool = False):
    try:
        return state.embedder.faces(image, name, select, all_faces)
    except MultipleFacesError:  # the CLI's message names CLI options: say what to do on this page instead
        raise MultipleFacesError(f"{name} shows several faces of similar size; crop it to one person, or choose "
                                 "which face to use under 'When a photo shows several faces'") from None


def run_compare(state: AppState, uploads: list[tuple[bytes, str]], select: str | None) -> str:
    from facematch.embedding.figures import compare_png, png_bytes

    images = [decode(data, name) for data, name in uploads]  # every unreadable upload fails before the model
    names = [name for _, name in uploads]
    with state.lock:
        photos = [faces_of(state, im, name, select) for im, name in zip(images, names)]
        crops = [p.faces[0].crop for p in photos]
        views = state.embedder.views(crops) if state.probe is None else None  # one pass: embeddings and quality
        similarity = pair_similarity(state.embedder, photos, views) if state.probe is None else \
            cross_similarity(state.embedder, state.probe, photos)
        gate = state.quality
        quality = gate.scores(state.embedder, crops, views) if gate is not None else []
    d = state.decision
    same = None if gate is not None and any(gate.too_low(q) for q in quality) else accepted(similarity, d["threshold"])
    figure = compare_png(photos, similarity, same, d["text"])
    return pages.compare_result(same=same, similarity=similarity, threshold=d["threshold"], threshold_text=d["text"],
                                figure_png=figure, photos=photos, crops_png=[png_bytes(p.faces[0].crop) for p in photos],
                                names=names, quality=quality, quality_text=gate.text if gate is not None else "")


def run_search(state: AppState, upload: tuple[bytes, str], top_k: int, all_faces: bool) -> str:
    """:func:`~facematch.gallery.search.search_faces` of an upload's faces, at the 1:N threshold."""
    from facematch.embedding.figures import draw_boxes, png_bytes
    from facematch.gallery.search import search_faces

    data, name = upload
    image = decode(data, name)
    gallery = state.current_gallery()
    with state.lock:
        try:
            photo = state.embedder.faces(image, name, all_faces=all_faces)
        except MultipleFacesError:
            raise MultipleFacesError(f"{name} shows several faces of similar size; crop it to one person, or "
                                     "tick 'search every face in the photo'") from None
        r = search_faces(state.embedder, gallery, photo, top_k=top_k, threshold=state.search_decision,
                         quality=state.quality, probe_embedder=state.probe)
    faces = []
    for f in r["faces"]:
        x0, y0, x1, y1 = (float(v) for v in f["box"])
        box = (max(0, int(x0)), max(0, int(y0)), min(image.width, int(x1 + 0.5)), min(image.height, int(y1 + 0.5)))
        faces.append({**f, "crop_png": png_bytes(image.crop(box)),
                      "matches": [{**m, "png": _read_png(m.get("crop"))} for m in f["matches"]]})
    labels = [f"{i + 1}: {f['identity']}" for i, f in enumerate(faces)]
    figure = png_bytes(draw_boxes(image, [f["box"] for f in faces], labels=labels, max_width=960))
    return pages.search_result(name=name, threshold=r["threshold"], threshold_text=r["decision"]["text"],
                               figure_png=figure, faces=faces)


def _read_png(path) -> bytes | None:
    try:
        return Path(path).read_bytes() if path else None
    except OSError:
        return None

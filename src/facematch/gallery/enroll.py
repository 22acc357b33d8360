"""Enrol a folder of people into a :class:`~facematch.gallery.store.Gallery`: ``DIR/<name>/<photo>``.

One subfolder per person (photos in nested folders belong to that person), one or more photos each. Every
photo takes the one path of :class:`~facematch.embedding.photos.FaceEmbedder` (decoded and detected in
batches by :meth:`~facematch.embedding.photos.FaceEmbedder.photos`), and one face is enrolled per photo:
the largest, a photo with another face of similar size being refused unless ``select`` says which.

Incremental: a photo already enrolled under the same name from a file with the same stamp (size, mtime) is
skipped; new people and new or changed photos are added; photos deleted from the folder stay enrolled
(``facematch-gallery remove NAME`` deletes a person). Bad photos are counted by reason and skipped, never
fatal: ``no_face``, ``several_faces``, ``unreadable`` (missing, empty, not an image, corrupt, too large),
``no_person_folder`` (an image directly in ``DIR``); they are tried again by the next run. The gallery is
saved every :data:`SAVE_EVERY_S` seconds and at the end (also when interrupted), so a killed enrolment
keeps what it had saved; each save adds to the newest version of the gallery, whoever else wrote it
meanwhile (:meth:`~facematch.gallery.store.Gallery.save`), and the summary counts the whole gallery.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from facematch.errors import FacematchError, MultipleFacesError, NoFaceError
from facematch.faces.images import list_images
from facematch.utils.io import atomic_write_text, stamp_before_reading

#: Photos embedded together (detection batches within, FaceEmbedder.photos).
CHUNK = 32
#: Seconds between intermediate saves of a long enrolment.
SAVE_EVERY_S = 30.0
REASONS = ("no_face", "several_faces", "unreadable", "no_person_folder", "error")


def failure_reason(err: FacematchError) -> str:
    if isinstance(err, NoFaceError):
        return "no_face"
    if isinstance(err, MultipleFacesError):
        return "several_faces"
    if err.exit_code in (2, 5):  # DataNotFoundError (vanished meanwhile), UnreadableImageError
        return "unreadable"
    return "error"


def people_photos(folder: str | Path) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(name, absolute photo path), ...], [images directly in folder])`` by
    :func:`~facematch.faces.images.list_images`, the one folder scan."""
    root = Path(folder).expanduser().resolve()
    pairs, loose = [], []
    for rel in list_images(root):
        name, sep, _ = rel.partition("/")
        if sep:
            pairs.append((name, str(root / rel)))
        else:
            loose.append(str(root / rel))
    return pairs, loose


def enroll_folder(face_embedder, gallery, folder: str | Path, *, select: str | None = None,
                  progress: bool = True, failures_tsv: str | Path | None = None) -> dict:
    """Enrol ``folder`` into ``gallery`` (module docstring) and save it; returns the summary::

        {"people", "faces", "people_added", "enrolled", "already_enrolled", "failed": {reason: n},
         "failures": [{"path", "reason", "message"}, ...]}
    """
    gallery.check_model(face_embedder.model.fingerprint, face_embedder.settings)
    pairs, loose = people_photos(folder)
    if not pairs and not loose:
        raise FacematchError(f"no images found in {folder}; enroll expects one subfolder of photos per person")
    before = set(gallery.names)
    failures = [{"path": p, "reason": "no_person_folder", "message": "image directly in the folder; put it "
                 "in a subfolder named for the person"} for p in loose]
    todo, already = [], 0
    for name, path in pairs:
        stamp = stamp_before_reading(path)
        if gallery.enrolled(name, path, stamp):
            already += 1
        else:
            todo.append((name, path, stamp))
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="photo", desc="enroll", file=sys.stderr)
    enrolled, added, last_save = 0, set(), time.monotonic()
    try:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start: start + CHUNK]
            found = list(face_embedder.photos([p for _, p, _ in chunk], select=select))
            good = [(item, pf) for item, pf in zip(chunk, found) if not isinstance(pf, FacematchError)]
            for (_, path, _), pf in zip(chunk, found):
                if isinstance(pf, FacematchError):
                    failures.append({"path": path, "reason": failure_reason(pf), "message": str(pf).splitlines()[0]})
            for ((name, path, stamp), pf), emb in zip(good, face_embedder.embed([pf for _, pf in good])):
                face = pf.faces[0]
                gallery.add(name, path, emb[0], face.crop, box=face.box, stamp=stamp)
                added.add(name)
                enrolled += 1
            if bar is not None:
                bar.update(len(chunk))
            if time.monotonic() - last_save > SAVE_EVERY_S:
                gallery.save()
                last_save = time.monotonic()
    finally:
        if bar is not None:
            bar.close()
        gallery.save()  # also on Ctrl-C: what was embedded is kept
        if failures_tsv:
            write_failures_tsv(failures_tsv, failures)
    failed = {r: 0 for r in REASONS}
    for f in failures:
        failed[f["reason"]] += 1
    return {"people": len(gallery.names), "faces": len(gallery), "people_added": len(added - before),
            "enrolled": enrolled, "already_enrolled": already, "failed": {k: v for k, v in failed.items() if v},
            "failures": failures}


def write_failures_tsv(path: str | Path, failures: list[dict]) -> None:
    """``path<TAB>reason<TAB>message`` per failed photo, as ``facematch-data prepare``'s failures.tsv."""
    rows = sorted(failures, key=lambda f: f["path"])
    atomic_write_text(Path(path).expanduser(), "path\treason\tmessage\n"
                      + "".join(f"{f['path']}\t{f['reason']}\t{f['message']}\n" for f in rows))


def summary_text(s: dict) -> str:
    """The few lines ``facematch-gallery enroll`` ends with."""
    failed = sum(s["failed"].values())
    why = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in s["failed"].items())
    return (f"gallery: {s['people']} people, {s['faces']} faces ({s['people_added']} people added)\n"
            f"photos: {s['enrolled']} enrolled, {s['already_enrolled']} skipped as already enrolled, "
            f"{failed} failed" + (f" ({why})" if why else ""))

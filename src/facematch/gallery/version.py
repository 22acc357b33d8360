"""A gallery folder on disk: every write publishes a whole new version by one rename; readers read one version.

    GALLERY/manifest.json           the pointer and the version it points at: format, model (fingerprint +
                                    FaceEmbedder settings), index kind, generation, the name of the version's
                                    embeddings file, and the entries (name, photo, stamp, box, crop)
    GALLERY/embeddings.<gen>.npy    (N, D) float32 unit-norm embeddings, row i = entry i; never rewritten
    GALLERY/faces/<name>/<photo>-<digest>.png   the aligned crop of every enrolled face
    GALLERY/.lock                   the writers' lock (:mod:`facematch.utils.locks`)

Writing (:func:`write_version`, called with the lock held): crops first, then the embeddings under the new
generation's file name, then ``manifest.json`` by ``os.replace`` (the commit: before it readers see the old
version, after it the new one, never a mix), then embeddings files other than this one and the previous one
are deleted. A writer killed at any point leaves the last committed version intact plus orphans the next
commit removes.

Reading (:func:`read_version`): the manifest is read once, through one open file whose ``fstat`` is the
version's :func:`stamp`; then the embeddings file it names is loaded. The previous generation's file is kept
for the reader that read the manifest just before a commit; a reader that fell more than a whole commit
behind finds its file gone (only ever deleted after a newer manifest was committed) and resolves the pointer
again, up to :data:`READ_ATTEMPTS` times. On POSIX a file already opened stays readable after its unlink.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from facematch.errors import FacematchError
from facematch.gallery.index import check_kind
from facematch.utils.io import atomic_write, atomic_write_text, remove_stale_tmp

FORMAT = "facematch-gallery/1"
MANIFEST = "manifest.json"
FACES = "faces"
#: Times a reader resolves the pointer again when the version it read was replaced twice meanwhile.
READ_ATTEMPTS = 20
#: Settings of the FaceEmbedder that must match between enrolment and search (with the weights' fingerprint).
MATCHED_SETTINGS = ("arch", "flip")
#: What a manifest may hold (an allow list: a gallery folder may come from elsewhere) and its size bound.
MANIFEST_KEYS = {"format", "model", "index", "generation", "embeddings", "created", "updated", "entries"}
ENTRY_KEYS = {"name", "photo", "stamp", "box", "crop"}
EMBEDDINGS = re.compile(r"embeddings\.\d{1,12}\.npy")
MAX_MANIFEST_BYTES = 1 << 30  # ~ 4 million entries


def check_name(name: str) -> str:
    """An identity name is one folder name (it names ``faces/<name>``): not empty, no path separator."""
    name = str(name)
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith("."):
        raise FacematchError(f"identity name {name!r} is not a usable folder name; rename the person's folder")
    return name


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def png_bytes(crop: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(crop, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


Stamp = tuple  # (st_ino, st_mtime_ns, st_size) of manifest.json: which version is published


def stamp(root: str | os.PathLike) -> Stamp | None:
    """The published version's stamp, ``None`` when there is no manifest: a cheap "has it changed?"."""
    try:
        st = os.stat(Path(root) / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _fix(root: Path) -> str:
    return f"; delete the folder and re-enrol (`facematch-gallery enroll DIR --out {root}`)"


def _read_manifest(root: Path) -> tuple[dict, Stamp]:
    mpath = root / MANIFEST
    try:
        with open(mpath, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size > MAX_MANIFEST_BYTES:
                raise ValueError(f"{st.st_size} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")
            manifest = json.loads(fh.read(st.st_size + 1))  # not the bound: a read allocates what it asks for
    except (OSError, ValueError, RecursionError) as err:
        raise FacematchError(f"{mpath} is corrupt ({(str(err).splitlines() or [type(err).__name__])[0]}){_fix(root)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FacematchError(f"{mpath} is not a {FORMAT} manifest{_fix(root)}")
    try:
        _check_manifest(manifest)
    except (KeyError, TypeError, ValueError, FacematchError) as err:
        raise FacematchError(f"{mpath} is malformed ({type(err).__name__}: {err}){_fix(root)}") from None
    return manifest, (st.st_ino, st.st_mtime_ns, st.st_size)


def _check_manifest(manifest: dict) -> None:
    """Raise ValueError unless ``manifest`` is what a gallery writer writes: its keys, the model record, an
    embeddings file named ``embeddings.<n>.npy`` in the folder, entries whose crop is ``faces/<name>/<file>.png``
    (no path of the file's choosing is ever read), stamps and boxes of numbers."""
    if set(manifest) - MANIFEST_KEYS:
        raise ValueError(f"unknown keys {sorted(set(manifest) - MANIFEST_KEYS)[:4]}")
    model = manifest["model"]
    if not isinstance(model, dict) or not isinstance(model["fingerprint"], str) or not isinstance(model["settings"], dict):
        raise ValueError("model record")
    check_kind(manifest.get("index", "flat"))
    if manifest.get("embeddings") is not None and not EMBEDDINGS.fullmatch(str(manifest["embeddings"])):
        raise ValueError(f"embeddings file {str(manifest['embeddings'])[:60]!r} is not embeddings.<n>.npy")
    if not isinstance(manifest.get("generation", 0), int) or not isinstance(manifest["entries"], list):
        raise ValueError("generation or entries")
    for e in manifest["entries"]:
        if not isinstance(e, dict) or set(e) - ENTRY_KEYS or not isinstance(e["photo"], str):
            raise ValueError("an entry that is not {name, photo, stamp, box, crop}")
        crop = str(e["crop"]).split("/")
        if len(crop) != 3 or crop[0] != FACES or crop[1] != check_name(e["name"]) or crop[2] in ("", ".png") \
                or "\0" in crop[2] or not crop[2].endswith(".png"):
            raise ValueError(f"crop {str(e['crop'])[:60]!r} is not {FACES}/<name>/<file>.png")
        if not _numbers(e.get("stamp"), 2, int) or not _numbers(e.get("box"), 4, (int, float)):
            raise ValueError("a stamp or box that is not numbers")


def _numbers(v, n: int, kind) -> bool:
    return v is None or (isinstance(v, list) and len(v) == n and all(isinstance(x, kind) and not isinstance(x, bool) for x in v))


def read_version(root: str | os.PathLike) -> tuple[dict, np.ndarray, Stamp]:
    """``(manifest, embeddings, stamp)`` of one published version of the gallery in ``root`` (module
    docstring); a missing or damaged gallery stops with one line naming it and the fix."""
    root = Path(root).expanduser()
    fix = f"enrol one with `facematch-gallery enroll DIR --out {root}`"
    if not root.is_dir():
        raise FacematchError(f"gallery not found: {root}; {fix}")
    if not (root / MANIFEST).is_file():
        raise FacematchError(f"{root} is not a facematch gallery (no {MANIFEST}); {fix}")
    for _ in range(READ_ATTEMPTS):
        manifest, st = _read_manifest(root)
        emb = np.zeros((0, 0), np.float32)
        if manifest.get("embeddings"):
            epath = root / manifest["embeddings"]
            try:
                emb = np.load(epath, allow_pickle=False)
                if emb.dtype != np.float32 or emb.ndim != 2:
                    raise ValueError(f"{emb.dtype} array of {emb.ndim} dimensions, not a float32 matrix")
            except FileNotFoundError as err:
                if stamp(root) != st:  # replaced by two commits since the manifest was read: read the newest
                    continue
                raise FacematchError(f"{epath} cannot be read ({str(err).splitlines()[0]}){_fix(root)}") from None
            except (OSError, ValueError) as err:
                raise FacematchError(f"{epath} cannot be read ({str(err).splitlines()[0]}){_fix(root)}") from None
        n = len(manifest["entries"])
        if emb.shape[0] != n or (n and emb.ndim != 2):
            raise FacematchError(f"{root}: {n} entries in {MANIFEST} but embeddings of shape {emb.shape}{_fix(root)}")
        return manifest, emb, st
    raise FacematchError(f"gallery {root} was rewritten {READ_ATTEMPTS} times while it was being read; try again")


def check_model(root: Path, rec: dict, fingerprint: str, settings: Mapping[str, Any]) -> None:
    """Refuse a model other than the one (``rec``: the manifest's model record) the gallery in ``root`` was
    enrolled with (weights, backbone, flip test): its embeddings would not be comparable."""
    mine = {k: rec["settings"].get(k) for k in MATCHED_SETTINGS}
    theirs = {k: settings.get(k) for k in MATCHED_SETTINGS}
    if rec["fingerprint"] != fingerprint or mine != theirs:
        def what(fp: str, s: dict) -> str:
            return f"{s['arch']}, weights sha256 {fp[:12]}..., flip {s['flip']}"

        raise FacematchError(
            f"gallery {root} was enrolled with another model ({what(rec['fingerprint'], mine)}); this run "
            f"uses {what(fingerprint, theirs)}: pass the model options it was enrolled with, or enrol a new gallery"
        )


def empty_manifest(model: dict, index: str, created: str) -> dict:
    """The manifest of a new gallery of ``model`` (``{"fingerprint", "settings"}``), before its first commit."""
    return {"format": FORMAT, "model": dict(model), "index": index, "generation": 0, "embeddings": None,
            "created": created, "entries": []}


def _ours(name: str) -> bool:
    """A file a gallery writer makes before its first commit (lock, temporaries, crops, embeddings)."""
    return name.startswith(".") or name == FACES or (name.startswith("embeddings.") and name.endswith(".npy"))


def check_new_folder(root: Path) -> None:
    """A new gallery goes into a missing or empty folder (what a first enrolment killed before its commit
    left there aside)."""
    if (root / MANIFEST).is_file():
        raise FacematchError(f"{root} already holds a gallery; open it (enroll into it adds to it)")
    if root.exists() and (not root.is_dir() or not all(_ours(f.name) for f in root.iterdir())):
        raise FacematchError(f"{root} exists and is not an empty folder; choose a new --out folder for the gallery")


def write_version(root: Path, manifest: dict, embeddings: np.ndarray, crops: dict[str, bytes]) -> Stamp:
    """Publish ``manifest`` (its ``generation`` advanced, its ``embeddings`` named) with ``embeddings`` and the
    new ``crops`` (``{relative path: PNG bytes}``) as the next version; the caller holds the lock. Returns
    the new version's stamp."""
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(root)
    for rel, png in crops.items():
        atomic_write(root / rel, lambda fh, png=png: fh.write(png))
    previous = manifest.get("embeddings")
    gen = int(manifest.get("generation", 0)) + 1
    name = f"embeddings.{gen}.npy"
    atomic_write(root / name, lambda fh: np.save(fh, embeddings, allow_pickle=False))
    manifest.update(generation=gen, embeddings=name)
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    for f in root.glob("embeddings.*.npy"):  # older generations and orphans of a killed write
        if f.name not in (name, previous):
            f.unlink(missing_ok=True)
    return stamp(root)

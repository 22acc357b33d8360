"""A gallery of enrolled faces in one folder: what ``facematch-gallery`` enrols into and searches.

    GALLERY/manifest.json           format, model (fingerprint + FaceEmbedder settings), index kind, entries
    GALLERY/embeddings.<gen>.npy    (N, D) float32 unit-norm embeddings, row i = entry i
    GALLERY/faces/<name>/<photo>-<digest>.png   the aligned crop of every enrolled face (the web app shows them)

An entry is one enrolled face: its identity ``name``, the source ``photo`` (absolute path), that file's
``stamp`` (size, mtime_ns: an enrolment re-run skips a photo whose stamp is unchanged), the face ``box`` in
photo pixels and its ``crop`` (relative to the folder).

Every write is atomic and ordered so that a reader, or an enrolment killed at any point, never sees a
half-written gallery: crops first, then the embeddings under a new generation's file name, then the
manifest that points at them (one rename: the commit), then the previous generation's file is deleted.
Until the manifest is renamed the old one still names the old, intact embeddings, so nothing already saved
is lost; files left by a killed run are orphans the next save removes.

The faiss index is rebuilt from the embeddings when first searched rather than cached on disk: for the
exact index that is a copy of the matrix (milliseconds at 10^5 faces), it cannot go stale or half-written,
and galleries enrolled from photos stay far below the 10^6 vectors where building an HNSW graph takes
minutes (``benchmarks/gallery_search.py`` records the build times).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from facematch.errors import FacematchError
from facematch.gallery.index import VectorIndex, check_kind
from facematch.utils.io import atomic_write, atomic_write_text, digest, remove_stale_tmp

FORMAT = "facematch-gallery/1"
MANIFEST = "manifest.json"
FACES = "faces"
#: Settings of the FaceEmbedder that must match between enrolment and search (with the weights' fingerprint).
MATCHED_SETTINGS = ("arch", "flip")


def check_name(name: str) -> str:
    """An identity name is one folder name (it names ``faces/<name>``): not empty, no path separator."""
    name = str(name)
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith("."):
        raise FacematchError(f"identity name {name!r} is not a usable folder name; rename the person's folder")
    return name


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _png_bytes(crop: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(crop, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Gallery:
    """Enrolled faces of named identities (module docstring); :meth:`create` or :meth:`open` one, then
    :meth:`add` / :meth:`remove` and :meth:`save`, or :meth:`search`."""

    def __init__(self, root: str | os.PathLike, manifest: dict, embeddings: np.ndarray):
        self.root = Path(root)
        self.manifest = manifest
        self._rows: list[np.ndarray] = [np.asarray(embeddings, np.float32)] if len(embeddings) else []
        self._index: VectorIndex | None = None
        self._stamps: dict[tuple[str, str], Any] | None = None  # (name, photo) -> stamp, built when first asked

    # ------------------------------------------------------------------------------ opening, saving

    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        return (Path(path).expanduser() / MANIFEST).is_file()

    @classmethod
    def create(cls, path: str | os.PathLike, model_fingerprint: str, settings: Mapping[str, Any],
               index: str = "flat") -> "Gallery":
        """A new, empty gallery in ``path`` (an empty or missing folder), written at once."""
        root = Path(path).expanduser()
        if cls.exists(root):
            raise FacematchError(f"{root} already holds a gallery; open it (enroll into it adds to it)")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise FacematchError(f"{root} exists and is not an empty folder; choose a new --out folder for the gallery")
        manifest = {"format": FORMAT, "model": {"fingerprint": str(model_fingerprint), "settings": dict(settings)},
                    "index": check_kind(index), "generation": 0, "embeddings": None, "created": _now(),
                    "entries": []}
        g = cls(root, manifest, np.zeros((0, 0), np.float32))
        g.save()
        return g

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Gallery":
        """The gallery in ``path``; a missing or damaged one stops with one line naming it and the fix."""
        root = Path(path).expanduser()
        fix = f"enrol one with `facematch-gallery enroll DIR --out {root}`"
        if not root.is_dir():
            raise FacematchError(f"gallery not found: {root}; {fix}")
        mpath = root / MANIFEST
        if not mpath.is_file():
            raise FacematchError(f"{root} is not a facematch gallery (no {MANIFEST}); {fix}")
        broken = f"; delete the folder and re-enrol (`facematch-gallery enroll DIR --out {root}`)"
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as err:
            raise FacematchError(f"{mpath} is corrupt ({str(err).splitlines()[0]}){broken}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise FacematchError(f"{mpath} is not a {FORMAT} manifest{broken}")
        try:
            entries, model = list(manifest["entries"]), dict(manifest["model"])
            if not isinstance(model["fingerprint"], str) or not isinstance(model["settings"], dict):
                raise ValueError("model record")
            check_kind(manifest.get("index", "flat"))
            if not all(isinstance(e[k], str) for e in entries for k in ("name", "photo", "crop")):
                raise ValueError("entry without a name, photo or crop")
        except (KeyError, TypeError, ValueError, FacematchError) as err:
            raise FacematchError(f"{mpath} is malformed ({type(err).__name__}: {err}){broken}") from None
        emb = np.zeros((0, 0), np.float32)
        if manifest.get("embeddings"):
            epath = root / manifest["embeddings"]
            try:
                emb = np.load(epath, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise FacematchError(f"{epath} cannot be read ({str(err).splitlines()[0]}){broken}") from None
        if emb.shape[0] != len(entries) or (len(entries) and emb.ndim != 2):
            raise FacematchError(f"{root}: {len(entries)} entries in {MANIFEST} but embeddings of shape "
                                 f"{emb.shape}{broken}")
        return cls(root, manifest, emb)

    def save(self) -> None:
        """Commit the gallery atomically (module docstring): embeddings under a new name, then the manifest."""
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(self.root)
        gen = int(self.manifest.get("generation", 0)) + 1
        name = f"embeddings.{gen}.npy"
        emb = self.embeddings
        atomic_write(self.root / name, lambda fh: np.save(fh, emb, allow_pickle=False))
        self.manifest.update(generation=gen, embeddings=name, updated=_now())
        atomic_write_text(self.root / MANIFEST, json.dumps(self.manifest, indent=1) + "\n")
        for f in self.root.glob("embeddings.*.npy"):  # the previous generation and any orphan of a killed save
            if f.name != name:
                f.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------ contents

    @property
    def entries(self) -> list[dict]:
        return self.manifest["entries"]

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) float32, row i = :attr:`entries`\\ [i]."""
        if len(self._rows) > 1:
            self._rows = [np.concatenate(self._rows, axis=0)]
        return self._rows[0] if self._rows else np.zeros((0, 0), np.float32)

    @property
    def names(self) -> list[str]:
        return sorted({e["name"] for e in self.entries})

    def counts(self) -> dict[str, int]:
        """Enrolled faces per identity, by name."""
        out: dict[str, int] = {}
        for e in self.entries:
            out[e["name"]] = out.get(e["name"], 0) + 1
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def index_kind(self) -> str:
        return self.manifest.get("index", "flat")

    @index_kind.setter
    def index_kind(self, kind: str) -> None:
        self.manifest["index"] = check_kind(kind)
        self._index = None

    def enrolled(self, name: str, photo: str, stamp: Sequence[int] | None) -> bool:
        """Whether ``photo`` is already enrolled as ``name`` from a file with this ``stamp``."""
        if self._stamps is None:
            self._stamps = {(e["name"], e["photo"]): e.get("stamp") for e in self.entries}
        key = (name, photo)
        return key in self._stamps and self._stamps[key] == (list(stamp) if stamp is not None else None)

    def crop_path(self, entry: Mapping) -> Path:
        return self.root / entry["crop"]

    # ------------------------------------------------------------------------------ the model

    def check_model(self, fingerprint: str, settings: Mapping[str, Any]) -> None:
        """Refuse a model other than the one this gallery was enrolled with (weights, backbone, flip test):
        its embeddings would not be comparable."""
        rec = self.manifest["model"]
        mine = {k: rec["settings"].get(k) for k in MATCHED_SETTINGS}
        theirs = {k: settings.get(k) for k in MATCHED_SETTINGS}
        if rec["fingerprint"] != fingerprint or mine != theirs:
            def what(fp: str, s: dict) -> str:
                return f"{s['arch']}, weights sha256 {fp[:12]}..., flip {s['flip']}"

            raise FacematchError(
                f"gallery {self.root} was enrolled with another model ({what(rec['fingerprint'], mine)}); this run "
                f"uses {what(fingerprint, theirs)}: pass the model options it was enrolled with, or enrol a new gallery"
            )

    # ------------------------------------------------------------------------------ changing it

    def add(self, name: str, photo: str, embedding: np.ndarray, crop: np.ndarray, *, box=None,
            stamp: Sequence[int] | None = None) -> dict:
        """Enrol one face (its crop PNG is written now; the rest at :meth:`save`). An entry of the same
        ``name`` and ``photo`` (the file changed since) is replaced."""
        name, photo = check_name(name), str(photo)
        vec = np.asarray(embedding, np.float32).reshape(1, -1)
        if self._rows and self._rows[0].shape[1] != vec.shape[1]:
            raise ValueError(f"embedding of size {vec.shape[1]}, gallery holds size {self._rows[0].shape[1]}")
        rel = f"{FACES}/{name}/{Path(photo).stem}-{digest(photo, 8)}.png"
        atomic_write(self.root / rel, lambda fh: fh.write(_png_bytes(crop)))
        self.enrolled(name, photo, None)  # builds the (name, photo) lookup
        if (name, photo) in self._stamps:  # re-enrolled (the file changed): drop the old entry
            self._keep([i for i, e in enumerate(self.entries) if (e["name"], e["photo"]) != (name, photo)])
            self.enrolled(name, photo, None)  # rebuilt without it
        entry = {"name": name, "photo": photo, "stamp": list(stamp) if stamp is not None else None,
                 "box": [round(float(v), 1) for v in box] if box is not None else None, "crop": rel}
        self.entries.append(entry)
        self._rows.append(vec)
        self._stamps[(name, photo)] = entry["stamp"]
        self._index = None
        return entry

    def _keep(self, rows: list[int]) -> None:
        """Keep only these entries (and their embedding rows)."""
        emb = self.embeddings
        self.manifest["entries"] = [self.entries[i] for i in rows]
        self._rows = [emb[rows]] if rows else []
        self._stamps = self._index = None

    def remove(self, name: str) -> int:
        """Delete every face of ``name`` and save; returns how many. An unknown name is a user error."""
        if name not in {e["name"] for e in self.entries}:
            raise FacematchError(f"no identity '{name}' in gallery {self.root} "
                                 f"(`facematch-gallery list --gallery {self.root}` shows the names)")
        keep = [i for i, e in enumerate(self.entries) if e["name"] != name]
        n = len(self.entries) - len(keep)
        self._keep(keep)
        self.save()  # the commit; the crops go after it, so a killed removal leaves only orphan files
        shutil.rmtree(self.root / FACES / check_name(name), ignore_errors=True)
        return n

    # ------------------------------------------------------------------------------ searching

    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = VectorIndex(self.embeddings, self.index_kind)
        return self._index

    def search(self, queries, top_k: int = 5) -> list[list[dict]]:
        """The ``top_k`` best identities for each query embedding (rows of (Q, D) unit vectors), best
        first: ``{"name", "similarity", "crop", "photo"}``, an identity scored by its best enrolled face,
        whose crop (absolute path) and photo are given.

        The index is asked for more faces than identities (doubling until ``top_k`` distinct identities
        or the whole gallery came back): an identity's first face in a best-first list is its best."""
        if not len(self):
            raise FacematchError(f"gallery {self.root} has no faces yet; enrol some with "
                                 f"`facematch-gallery enroll DIR --out {self.root}`")
        q = np.asarray(queries, np.float32).reshape(-1, self.embeddings.shape[1])
        top_k, n_ids = max(1, int(top_k)), len(self.names)
        want = min(top_k, n_ids)
        index, out = self.index(), []
        for row in q:
            k = min(len(self), 4 * top_k)
            while True:
                sims, ids = index.search(row[None], k)
                best = self._aggregate(sims[0], ids[0], want)
                if len(best) >= want or k >= len(self):
                    break
                k = min(len(self), 2 * k)
            out.append(best)
        return out

    def _aggregate(self, sims: np.ndarray, ids: np.ndarray, want: int) -> list[dict]:
        best: dict[str, dict] = {}
        for s, i in zip(sims, ids):
            if i < 0:
                break
            e = self.entries[int(i)]
            if e["name"] not in best:
                best[e["name"]] = {"name": e["name"], "similarity": float(s),
                                   "crop": str(self.crop_path(e).resolve()), "photo": e["photo"]}
                if len(best) == want:
                    break
        return list(best.values())

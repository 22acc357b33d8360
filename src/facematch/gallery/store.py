"""A gallery of enrolled faces in one folder: what ``facematch-gallery`` enrols into and searches.

An entry is one enrolled face: its identity ``name``, the source ``photo`` (absolute path), that file's
``stamp`` (size, mtime_ns: an enrolment re-run skips a photo whose stamp is unchanged), the face ``box`` in
photo pixels and its ``crop`` (relative to the folder). The files and how a version is published and read
are :mod:`.version`'s.

Several processes may write one gallery at once. A :class:`Gallery` records its changes (add, remove, a
new index kind) and :meth:`~Gallery.save` replays them on the newest published version under the gallery's
lock (:mod:`facematch.utils.locks`): read it, apply, publish the next version, all with the lock held, so no
writer's changes are lost and whichever writer commits first creates a new gallery. Detection and embedding
run outside the lock; crops are written at the commit, so a concurrent removal never deletes one.

The faiss index is rebuilt from the embeddings when first searched rather than cached on disk: for the
exact index that is a copy of the matrix (milliseconds at 10^5 faces), it cannot go stale or half-written,
and galleries enrolled from photos stay far below the 10^6 vectors where building an HNSW graph takes
minutes (``benchmarks/gallery_search.py`` records the build times).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from facematch.errors import FacematchError
from facematch.gallery import version
from facematch.gallery.index import VectorIndex, check_kind
from facematch.gallery.version import FACES, MANIFEST, check_name, now, png_bytes
from facematch.utils.io import digest
from facematch.utils.locks import folder_lock
from facematch.utils.untrusted import inside

#: Seconds a writer waits for another writer of the same gallery (``--lock-timeout``).
LOCK_TIMEOUT_S = 120.0


class Gallery:
    """Enrolled faces of named identities (module docstring): :meth:`open` one, or :meth:`new` /
    :meth:`create` one; :meth:`add` / :meth:`remove` and :meth:`save`, or :meth:`search`. ``stamp`` names
    the published version it was read from (:func:`.version.stamp`; ``None`` for one not saved yet)."""

    def __init__(self, root: str | os.PathLike, manifest: dict, embeddings: np.ndarray, stamp=None):
        self.root = Path(root)
        self.manifest = manifest
        self.stamp = stamp
        self.lock_timeout = LOCK_TIMEOUT_S
        self._rows: list[np.ndarray] = [np.asarray(embeddings, np.float32)] if len(embeddings) else []
        self._index: VectorIndex | None = None
        self._stamps: dict[tuple[str, str], Any] | None = None  # (name, photo) -> stamp, built when first asked
        self._pending: list[tuple[str, tuple]] = []  # changes since the last commit: (method, args), replayed
        self._crops: dict[str, bytes] = {}  # crops to write at the commit: {relative path: PNG}

    # ------------------------------------------------------------------------------ opening, saving

    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        return (Path(path).expanduser() / MANIFEST).is_file()

    @classmethod
    def new(cls, path: str | os.PathLike, model_fingerprint: str, settings: Mapping[str, Any],
            index: str = "flat") -> "Gallery":
        """A new, empty gallery for ``path`` (an empty or missing folder), in memory: :meth:`save` creates it
        (or adds to the gallery another writer created there meanwhile)."""
        root = Path(path).expanduser()
        version.check_new_folder(root)
        model = {"fingerprint": str(model_fingerprint), "settings": dict(settings)}
        return cls(root, version.empty_manifest(model, check_kind(index), now()), np.zeros((0, 0), np.float32))

    @classmethod
    def create(cls, path: str | os.PathLike, model_fingerprint: str, settings: Mapping[str, Any],
               index: str = "flat") -> "Gallery":
        """:meth:`new`, written at once."""
        (g := cls.new(path, model_fingerprint, settings, index)).save()
        return g

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Gallery":
        """The gallery in ``path`` as its newest published version; a missing or damaged one stops with one
        line naming it and the fix."""
        return cls(Path(path).expanduser(), *version.read_version(Path(path).expanduser()))

    @classmethod
    def existing(cls, path: str | os.PathLike) -> "Gallery | None":
        """The gallery in ``path``, or ``None`` when ``path`` can hold a new one; a folder in use or a damaged
        gallery stops with one line (before an enrolment loads its model)."""
        if not cls.exists(path):
            try:
                return version.check_new_folder(Path(path).expanduser())
            except FacematchError:
                if not cls.exists(path):  # not another writer's new gallery: a folder in use
                    raise
        return cls.open(path)

    @classmethod
    def open_or_new(cls, path: str | os.PathLike, model_fingerprint: str, settings: Mapping[str, Any],
                    index: str | None = None, known: "Gallery | None" = None) -> "Gallery":
        """What an enrolment writes into: the gallery in ``path`` (``known`` when that is still the newest
        version; another model is refused; ``index`` changes its index kind), or a :meth:`new` one."""
        g = known if known is not None and not known.changed() else cls.existing(path)
        if g is None:
            return cls.new(path, model_fingerprint, settings, index or "flat")
        g.check_model(model_fingerprint, settings)
        if index:
            g.index_kind = index
        return g

    def changed(self) -> bool:
        """Whether another version than this one's has been published since it was read."""
        return version.stamp(self.root) != self.stamp

    def save(self) -> list:
        """Commit this gallery's changes (module docstring): under the lock, replay them on the newest
        version (a new gallery when there is none), publish it, and become it. Returns what each replayed
        change returned (:meth:`remove`: the number of faces removed)."""
        with folder_lock(self.root, timeout=self.lock_timeout, what="facematch-gallery",
                         fix="try again when it has finished, or wait longer with --lock-timeout SECONDS"):
            if self.exists(self.root):
                base = Gallery.open(self.root)
                base.check_model(self.manifest["model"]["fingerprint"], self.manifest["model"]["settings"])
            else:
                version.check_new_folder(self.root)
                base = Gallery(self.root, version.empty_manifest(self.manifest["model"], self.index_kind, now()),
                               np.zeros((0, 0), np.float32))
            before = set(base.names)
            results = [getattr(base, method)(*args) for method, args in self._pending]
            base.manifest["updated"] = now()
            used = {e["crop"] for e in base.entries}
            crops = {rel: png for rel, png in self._crops.items() if rel in used}
            self.stamp = version.write_version(self.root, base.manifest, base.embeddings, crops)
            for name in before - set(base.names):  # after the commit: a reader of the old version may show them
                shutil.rmtree(self.root / FACES / check_name(name), ignore_errors=True)
        self.manifest, self._rows = base.manifest, base._rows
        self._stamps = self._index = None
        self._pending, self._crops = [], {}
        return results

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
        """The faiss index searched; stored by the next :meth:`save`."""
        self._change("_set_index", check_kind(kind))

    def _set_index(self, kind: str) -> None:
        self.manifest["index"] = kind
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
        """Refuse a model other than the one this gallery was enrolled with (:func:`.version.check_model`)."""
        version.check_model(self.root, self.manifest["model"], fingerprint, settings)

    # ------------------------------------------------------------------------------ changing it

    def _change(self, method: str, *args):
        """Apply one change now and record it for :meth:`save` to replay on the newest version."""
        result = getattr(self, method)(*args)
        self._pending.append((method, args))
        return result

    def add(self, name: str, photo: str, embedding: np.ndarray, crop: np.ndarray, *, box=None,
            stamp: Sequence[int] | None = None) -> dict:
        """Enrol one face (its crop PNG is kept in memory and written with the rest at :meth:`save`). An
        entry of the same ``name`` and ``photo`` (the file changed since) is replaced."""
        name, photo = check_name(name), str(photo)
        vec = np.asarray(embedding, np.float32).reshape(1, -1)
        if self._rows and self._rows[0].shape[1] != vec.shape[1]:
            raise ValueError(f"embedding of size {vec.shape[1]}, gallery holds size {self._rows[0].shape[1]}")
        rel = f"{FACES}/{name}/{Path(photo).stem}-{digest(photo, 8)}.png"
        entry = {"name": name, "photo": photo, "stamp": list(stamp) if stamp is not None else None,
                 "box": [round(float(v), 1) for v in box] if box is not None else None, "crop": rel}
        self._crops[rel] = png_bytes(crop)
        return self._change("_add_entry", entry, vec)

    def _add_entry(self, entry: dict, vec: np.ndarray) -> dict:
        key = (entry["name"], entry["photo"])
        self.enrolled(*key, None)  # builds the (name, photo) lookup
        if key in self._stamps:  # re-enrolled (the file changed): drop the old entry
            self._keep([i for i, e in enumerate(self.entries) if (e["name"], e["photo"]) != key])
            self.enrolled(*key, None)  # rebuilt without it
        self.entries.append(entry)
        self._rows.append(vec)
        self._stamps[key] = entry["stamp"]
        self._index = None
        return entry

    def _keep(self, rows: list[int]) -> None:
        """Keep only these entries (and their embedding rows)."""
        emb = self.embeddings
        self.manifest["entries"] = [self.entries[i] for i in rows]
        self._rows = [emb[rows]] if rows else []
        self._stamps = self._index = None

    def remove(self, name: str) -> int:
        """Delete every face of ``name`` and save; returns how many were removed. An unknown name (also one
        another writer removed meanwhile) is a user error."""
        self._change("_remove_name", name)
        return self.save()[-1]

    def _remove_name(self, name: str) -> int:
        if name not in {e["name"] for e in self.entries}:
            raise FacematchError(f"no identity '{name}' in gallery {self.root} "
                                 f"(`facematch-gallery list --gallery {self.root}` shows the names)")
        keep = [i for i, e in enumerate(self.entries) if e["name"] != name]
        n = len(self.entries) - len(keep)
        self._keep(keep)
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
                crop = inside(self.root, e["crop"])  # links resolved; a link out of the folder is no crop
                best[e["name"]] = {"name": e["name"], "similarity": float(s),
                                   "crop": str(crop) if crop is not None else None, "photo": e["photo"]}
                if len(best) == want:
                    break
        return list(best.values())

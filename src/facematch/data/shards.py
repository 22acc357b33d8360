"""Packed datasets: an identity-folder dataset as litdata shards plus one facematch index, read by path.

Why litdata (``litdata.streaming``) rather than WebDataset: a face dataset is read by *random access*
(P x K sampling, pairs, the per-image feature cache all ask for one image by name), and litdata's
``StreamingDataset`` serves ``ds[i]`` from local or ``s3://`` / ``gs://`` / ``azure://`` chunks with its
own download cache, while WebDataset's tar shards are sequential streams (random access needs a separate
tar index and re-implemented caching). litdata is also the Lightning ecosystem's format, already in the
dependency set, and its ``BinaryWriter`` writes chunks in-process, deterministically.

Layout of a packed folder ``OUT`` (written by :mod:`facematch.data.pack`):

- ``OUT/part-NNNNN/``: one litdata dataset per part of ``part_size`` images (``index.json`` +
  ``chunk-0-K.bin``); item ``i`` of the whole set is item ``i - first`` of its part. Parts make ``pack``
  resumable: a part is written into a temporary folder and renamed when complete.
- Each item: ``{"rel": "<identity>/<file>", "label": identity number, "image": the file's bytes}``, the
  original encoded bytes (no re-encoding), so decoding gives exactly the folder tree's pixels.
- ``OUT/facematch-pack.json`` (:data:`PACK_INDEX`, written last and atomically): format version, source
  root, item count, identities and their image counts, ``rel -> item id``, the parts with each file's
  byte size and sha256, a digest of all of them (``content_sha256``), the preprocessing the files need
  (``prealigned`` + template for an aligned set) and the pack settings.

Integrity: opening checks that every file the index names exists with its recorded size and that each
part's litdata index lists exactly those chunks and the recorded item count (cheap; local sets);
:meth:`PackedSet.verify` (``facematch-data verify OUT``) also checks every file's sha256 and decodes every
item. A problem stops with one line naming the shard and the fix (pack again).

Trust: litdata would run code from a part's ``index.json`` (a field declared ``pickle``), so both index
files are read by facematch first and accepted only with exactly the structure pack writes
(:mod:`facematch.data.shard_format`); litdata opens a part only after that, and a part's ``index.json``
must also be the bytes whose sha256 ``facematch-pack.json`` records.

An object-store root (``s3://bucket/prefix``) is read through litdata's downloaders into
``$FACEMATCH_CACHE_DIR/packed/<digest>``; each part's index is checked as above, chunk sizes by litdata.
"""

from __future__ import annotations

import bisect
import os
from functools import lru_cache
from pathlib import Path

from facematch.data.shard_format import CorruptPackError, check_litdata_index, read_pack_index
from facematch.errors import DataNotFoundError, FacematchError
from facematch.utils.io import digest, sha256_file

PACK_INDEX = "facematch-pack.json"
LITDATA_INDEX = "index.json"
URL_SCHEMES = ("s3://", "gs://", "azure://", "r2://")


def is_url(root) -> bool:
    return str(root).startswith(URL_SCHEMES)


def is_packed(root) -> bool:
    """Whether ``root`` is a packed set: an object-store URL, or a folder holding :data:`PACK_INDEX`."""
    return is_url(root) or (Path(root) / PACK_INDEX).is_file()


def _join(root: str, name: str) -> str:
    return f"{str(root).rstrip('/')}/{name}"


def repack_hint(root) -> str:
    return f"pack it again (`facematch-data pack SRC {root}`; finished parts are kept, damaged ones redone)"


def _download_cache(root: str) -> Path:
    from facematch.paths import cache_dir

    return Path(cache_dir()) / "packed" / digest(str(root))


class PackedSet:
    """The items of one packed folder or URL: ``read(rel) -> bytes``, ``rels``, ``identities``."""

    key_tag = "packed"  # names the reader in a FaceSource's key

    def __init__(self, root, index: dict):
        self.root = str(root) if is_url(root) else Path(root)
        self.index = index
        self.items: dict[str, int] = index["items"]
        self.parts: list[dict] = index["parts"]
        self._firsts = [p["first"] for p in self.parts]
        self._datasets: dict[int, object] = {}
        self._pid = os.getpid()

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, root, *, check: bool = True) -> "PackedSet":
        if is_url(root):
            local = _download_cache(root) / PACK_INDEX
            local.parent.mkdir(parents=True, exist_ok=True)
            from litdata.streaming.downloader import get_downloader

            get_downloader(str(root), str(local.parent), []).download_file(_join(root, PACK_INDEX), str(local))
            path = local
        else:
            if not Path(root).is_dir():
                raise DataNotFoundError(f"packed dataset not found: {root} (make it with `facematch-data pack SRC {root}`)")
            path = Path(root) / PACK_INDEX
            if not path.is_file():
                raise CorruptPackError(f"{root} is not a finished packed dataset (no {PACK_INDEX}); {repack_hint(root)}")
        packed = cls(root, read_pack_index(path, repack_hint(root)))
        if check and not is_url(root):
            packed.check_files()
        return packed

    @property
    def preprocess(self) -> dict:
        """The preprocessing the packed files need (``{"mode": "prealigned", "template": ...}`` or center)."""
        return dict(self.index.get("preprocess") or {"mode": "center"})

    @property
    def content_digest(self) -> str:
        return self.index["content_sha256"]

    @property
    def rels(self) -> list[str]:
        return list(self.items)

    @property
    def identities(self) -> dict[str, int]:
        return dict(self.index["identities"])

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, rel: str) -> bool:
        return rel in self.items

    def _shard(self, part: dict, name: str):
        return self.root / part["dir"] / name if not is_url(self.root) else _join(self.root, f"{part['dir']}/{name}")

    def check_files(self) -> None:
        """Every file the index names is there with its recorded size, and each part's litdata index lists
        exactly those chunks and the part's item count; else one line naming the shard."""
        for part in self.parts:
            for name, rec in part["files"].items():
                path = self._shard(part, name)
                try:
                    size = os.stat(path).st_size
                except FileNotFoundError:
                    raise CorruptPackError(f"shard {path} is missing; {repack_hint(self.root)}") from None
                if size != rec["bytes"]:
                    raise CorruptPackError(f"shard {path} is {size} bytes, the index records {rec['bytes']} "
                                           f"(truncated or replaced); {repack_hint(self.root)}")
            lit = self._shard(part, LITDATA_INDEX)
            chunks = check_litdata_index(lit, part["files"][LITDATA_INDEX], repack_hint(self.root))["chunks"]
            named = sorted(c["filename"] for c in chunks)
            recorded = sorted(n for n in part["files"] if n != LITDATA_INDEX)
            count = sum(int(c["chunk_size"]) for c in chunks)
            if named != recorded or count != part["count"]:
                raise CorruptPackError(
                    f"shard index {lit} disagrees with {self.root / PACK_INDEX} (chunks {named} with {count} "
                    f"items; recorded {recorded} with {part['count']}); {repack_hint(self.root)}")

    # -- reading ----------------------------------------------------------------------------------
    def _part_of(self, item: int) -> int:
        return bisect.bisect_right(self._firsts, item) - 1

    def _dataset(self, k: int):
        if os.getpid() != self._pid:  # a forked DataLoader worker opens its own readers
            self._datasets, self._pid = {}, os.getpid()
        ds = self._datasets.get(k)
        if ds is None:
            from litdata import StreamingDataset

            part = self.parts[k]
            # batch_decode off: items are read one by one in random order (P x K, pairs), not in windows
            ds = StreamingDataset(self._checked_part(part), batch_decode=False)
            if len(ds) != part["count"]:
                raise CorruptPackError(f"shard {self._shard(part, LITDATA_INDEX)} holds {len(ds)} items, the index "
                                       f"records {part['count']}; {repack_hint(self.root)}")
            self._datasets[k] = ds
        return ds

    def _checked_part(self, part: dict):
        """What litdata opens for ``part`` once its ``index.json`` is checked: a local part's folder, or for a URL
        the checked copy of its index in a cache folder named by its sha256 (litdata reads it, fetches chunks)."""
        recorded = part["files"][LITDATA_INDEX]
        if not is_url(self.root):
            check_litdata_index(self._shard(part, LITDATA_INDEX), recorded, repack_hint(self.root))
            return str(self._shard(part, "")).rstrip("/")
        from litdata.streaming.downloader import get_downloader
        from litdata.streaming.resolver import Dir

        local = _download_cache(self.root) / part["dir"] / recorded["sha256"][:16]
        local.mkdir(parents=True, exist_ok=True)
        remote = self._shard(part, "").rstrip("/")
        if not (local / LITDATA_INDEX).is_file():
            tmp = local / f".{LITDATA_INDEX}.{os.getpid()}.tmp"
            get_downloader(remote, str(local), []).download_file(self._shard(part, LITDATA_INDEX), str(tmp))
            os.replace(tmp, local / LITDATA_INDEX)
        check_litdata_index(local / LITDATA_INDEX, recorded, repack_hint(self.root), self._shard(part, LITDATA_INDEX))
        return Dir(path=str(local), url=remote)

    def chunk_name(self, item: int) -> str:
        """The shard file (chunk) holding ``item``, for messages."""
        k = self._part_of(item)
        part, local = self.parts[k], item - self.parts[k]["first"]
        try:
            chunks = check_litdata_index(self._shard(part, LITDATA_INDEX), None, "")["chunks"]
            for c in chunks:
                if local < int(c["chunk_size"]):
                    return str(self._shard(part, c["filename"]))
                local -= int(c["chunk_size"])
        except (FacematchError, TypeError):
            pass
        return str(self._shard(part, ""))

    def read_item(self, item: int) -> dict:
        k = self._part_of(item)
        try:
            rec = self._dataset(k)[item - self.parts[k]["first"]]
        except FacematchError:
            raise
        except Exception as err:  # litdata's error on a damaged chunk: name the shard instead
            raise CorruptPackError(f"shard {self.chunk_name(item)} cannot be read ({type(err).__name__}: "
                                   f"{str(err).splitlines()[0] if str(err) else ''}); {repack_hint(self.root)}") from None
        return rec

    def read(self, rel: str) -> bytes:
        """The original bytes of image ``rel`` (its file's content when packed)."""
        try:
            item = self.items[rel]
        except KeyError:
            raise DataNotFoundError(f"image not found: {rel} is not in the packed dataset {self.root} "
                                    "(pack the folder that holds it)") from None
        rec = self.read_item(item)
        if not isinstance(rec, dict) or rec.get("rel") != rel:
            got = rec.get("rel") if isinstance(rec, dict) else type(rec).__name__
            raise CorruptPackError(f"shard {self.chunk_name(item)} serves {got!r} as item {item}, the index says "
                                   f"{rel!r}; {repack_hint(self.root)}")
        return bytes(rec["image"])

    __call__ = read

    def name(self, rel: str) -> str:
        """How an item is named in messages: ``OUT::rel``."""
        return f"{self.root}::{rel}"

    # -- full check -------------------------------------------------------------------------------
    def verify(self, progress: bool = True, decode: bool = True) -> dict:
        """sha256 of every shard against the index, then every item read back (path, label, and a decode
        of its image); raises :class:`CorruptPackError` naming the first bad shard."""
        if is_url(self.root):
            raise FacematchError(f"verify needs a local packed folder; {self.root} is a URL (copy it locally first)")
        self.check_files()
        for part in self.parts:
            for name, rec in part["files"].items():
                path = self._shard(part, name)
                if sha256_file(path) != rec["sha256"]:
                    raise CorruptPackError(f"shard {path} does not match its sha256 in the index (corrupt); "
                                           f"{repack_hint(self.root)}")
        from facematch.faces.images import load_image_bytes

        labels = {ident: i for i, ident in enumerate(sorted(self.identities))}
        it = self.items.items()
        if progress:
            import sys

            from tqdm import tqdm

            it = tqdm(it, total=len(self.items), unit="img", desc="verify", file=sys.stderr)
        for rel, item in it:
            data = self.read(rel)
            rec_label = self.read_item(item)["label"]
            if rec_label != labels.get(rel.split("/")[0]):
                raise CorruptPackError(f"shard {self.chunk_name(item)}: {rel} has label {rec_label}, its identity "
                                       f"is {labels.get(rel.split('/')[0])}; {repack_hint(self.root)}")
            if decode:
                load_image_bytes(data, self.name(rel))
        return {"items": len(self.items), "parts": len(self.parts),
                "files": sum(len(p["files"]) for p in self.parts),
                "bytes": sum(r["bytes"] for p in self.parts for r in p["files"].values())}

    def __getstate__(self):  # DataLoader workers open their own litdata readers
        state = dict(self.__dict__)
        state["_datasets"] = {}
        return state


@lru_cache(maxsize=8)
def _open_cached(root: str, stamp: tuple) -> PackedSet:
    return PackedSet.open(root)


def open_packed(root) -> PackedSet:
    """:meth:`PackedSet.open`, once per root and index version in a process (the data module, the
    identity index and per-fold scoring all ask for the same set)."""
    if is_url(root):
        return _open_cached(str(root), ())
    p = Path(root) / PACK_INDEX
    try:
        stamp = (p.stat().st_size, p.stat().st_mtime_ns)
    except OSError:
        stamp = ()
    return _open_cached(str(Path(root).expanduser().resolve()), stamp)

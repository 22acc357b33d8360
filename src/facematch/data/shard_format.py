"""What a packed folder's two kinds of index file must say before anything else of it is read.

A packed folder (:mod:`facematch.data.shards`) may come from elsewhere, and litdata trusts its own
``index.json``: a field whose declared data format is ``pickle`` is deserialised with ``pickle.loads`` (code
runs), a ``data_spec`` naming a ``defaultdict`` factory imports a module by name, a chunk ``filename`` is a
path. So both files are read here, size-bounded, and accepted only when they have exactly the structure
:mod:`facematch.data.pack` writes (an allow list: every key and value known, nothing else):

- ``facematch-pack.json`` (:func:`check_pack_index`): the format, parts named ``part-NNNNN`` that tile the
  items in order, their files named ``index.json`` / ``chunk-A-B.bin`` with a size and a sha256, item names
  that are relative paths without ``..``.
- each part's litdata ``index.json`` (:func:`check_litdata_index`): three fields ``rel`` (``str``),
  ``label`` (``int``) and ``image`` (``bytes``), the plain dict tree, no compression or encryption,
  chunks named ``chunk-A-B.bin``. Only then is litdata given the part, so no chunk is read before.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from facematch.errors import FacematchError
from facematch.utils.untrusted import MIB, parse_json, read_bounded, relative_name

PACK_FORMAT = "facematch-packed/1"
#: Size bounds of the index files: facematch-pack.json names every image (room for about ten million names
#: of about fifty bytes); a part's index.json lists a few chunks.
MAX_PACK_INDEX_BYTES = 512 * MIB
MAX_LITDATA_INDEX_BYTES = 16 * MIB

PART_DIR = re.compile(r"part-\d{5}")
CHUNK_FILE = re.compile(r"chunk-\d{1,9}-\d{1,9}\.bin")
SHA256 = re.compile(r"[0-9a-f]{64}")

#: The fields of an item, in the order pack writes them, with the litdata data format of each.
FIELDS = {"rel": "str", "label": "int", "image": "bytes"}
_LEAF = {"type": None, "context": None, "children_spec": []}
#: litdata's pytree spec of ``{"rel": .., "label": .., "image": ..}`` (``data_spec``, a JSON string).
DATA_SPEC = [1, {"type": "builtins.dict", "context": json.dumps(list(FIELDS)), "children_spec": [_LEAF] * len(FIELDS)}]
#: Config keys that must be absent or null (pack never compresses, encrypts or sizes chunks by count).
NULL_KEYS = ("chunk_size", "compression", "compression_batch_size", "compression_level", "encryption",
             "ipc_compression")
CONFIG_KEYS = {"chunk_bytes", "data_format", "data_spec", "item_loader", "types", *NULL_KEYS}
CHUNK_KEYS = {"chunk_bytes", "chunk_size", "dim", "filename"}


class CorruptPackError(FacematchError):
    exit_code = 2


def _int(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def read_pack_index(path, fix: str) -> dict:
    """``facematch-pack.json`` at ``path``, size-bounded and checked (:func:`check_pack_index`)."""
    data = read_bounded(path, MAX_PACK_INDEX_BYTES, "packed index", fix, CorruptPackError)
    return check_pack_index(parse_json(data, str(path), "packed index", fix, CorruptPackError), path, fix)


def check_pack_index(index: dict, path, fix: str) -> dict:
    """``index`` when it has the structure pack writes (module docstring); else one line naming ``path``."""
    def bad(why: str):
        return CorruptPackError(f"{path} is not a packed index facematch wrote ({why}); {fix}")

    if index.get("format") != PACK_FORMAT:
        raise CorruptPackError(f"{path} has format {str(index.get('format'))[:40]!r}, not {PACK_FORMAT!r}; {fix}")
    items, parts, count = index.get("items"), index.get("parts"), index.get("count")
    if not _int(count) or not isinstance(items, dict) or len(items) != count:
        raise bad("its count and items disagree")
    if not isinstance(parts, list) or not parts:
        raise bad("no parts")
    first = 0
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("dir"), str) or not PART_DIR.fullmatch(part["dir"]):
            raise bad("a part not named part-NNNNN")
        if part.get("first") != first or not _int(part.get("count"), 1) or not isinstance(part.get("files"), dict):
            raise bad(f"part {part['dir']} does not follow the one before it")
        first += part["count"]
        for name, rec in part["files"].items():
            if name != "index.json" and not CHUNK_FILE.fullmatch(name):
                raise bad(f"part {part['dir']} names a file {name[:40]!r}")
            if not isinstance(rec, dict) or not _int(rec.get("bytes")) or not SHA256.fullmatch(str(rec.get("sha256"))):
                raise bad(f"part {part['dir']} records no size and sha256 for {name}")
        if "index.json" not in part["files"]:
            raise bad(f"part {part['dir']} has no index.json")
    if first != count:
        raise bad(f"its parts hold {first} items, its count is {count}")
    if not all(relative_name(rel) and _int(i) and i < count for rel, i in items.items()):
        raise bad("an item that is not a relative path without '..' or whose number is out of range")
    if len(set(items.values())) != count:
        raise bad("two items share a number")
    identities = index.get("identities")
    if not isinstance(identities, dict) or not all(isinstance(k, str) and _int(v) for k, v in identities.items()):
        raise bad("identities are not name: count")
    if not isinstance(index.get("content_sha256"), str) or not isinstance(index.get("preprocess", {}), (dict, type(None))):
        raise bad("no content digest")
    return index


def check_litdata_index(path, recorded: dict | None, fix: str, name: str | None = None) -> dict:
    """The litdata ``index.json`` at ``path`` (a part's), read size-bounded, when it is exactly what pack
    writes (module docstring) and, with ``recorded`` (its ``{"bytes", "sha256"}`` in facematch-pack.json),
    those very bytes; else one line naming it (``name``: the URL a downloaded copy came from). Call before
    litdata opens the part."""
    data = read_bounded(path, MAX_LITDATA_INDEX_BYTES, "shard index", fix, CorruptPackError)
    path = name or path
    if recorded is not None and hashlib.sha256(data).hexdigest() != recorded.get("sha256"):
        raise CorruptPackError(f"shard index {path} does not match its sha256 in the packed index (corrupt or "
                               f"replaced); {fix}")
    meta = parse_json(data, str(path), "shard index", fix, CorruptPackError)

    def bad(why: str):
        return CorruptPackError(f"shard index {path} is not one facematch's pack writes ({why}); refused before "
                                f"any chunk is read; {fix}")

    if set(meta) - {"chunks", "config", "updated_at"} or not isinstance(meta.get("config"), dict):
        raise bad(f"keys {sorted(meta)[:6]}")
    config = meta["config"]
    if config.get("data_format") != list(FIELDS.values()):
        shown = json.dumps(config.get("data_format"))[:80]
        raise bad(f"its fields are declared {shown}, facematch reads only {list(FIELDS.values())}")
    spec = config.get("data_spec")
    try:
        spec_ok = isinstance(spec, str) and json.loads(spec) == DATA_SPEC
    except (ValueError, RecursionError):
        spec_ok = False
    if not spec_ok:
        raise bad("its data_spec is not the dict of rel, label and image")
    if set(config) - CONFIG_KEYS:
        raise bad(f"unknown config keys {sorted(set(config) - CONFIG_KEYS)[:4]}")
    if any(config.get(k) is not None for k in NULL_KEYS) or config.get("item_loader") != "PyTreeLoader":
        raise bad("compressed, encrypted or read by another loader")
    if config.get("types", FIELDS) != FIELDS or not _int(config.get("chunk_bytes"), 1):
        raise bad("its field types or chunk size")
    chunks = meta.get("chunks")
    if not isinstance(chunks, list) or not chunks:
        raise bad("no chunks")
    for c in chunks:
        if (not isinstance(c, dict) or set(c) - CHUNK_KEYS or not CHUNK_FILE.fullmatch(str(c.get("filename")))
                or not _int(c.get("chunk_size"), 1) or not _int(c.get("chunk_bytes")) or c.get("dim") is not None):
            raise bad("a chunk that is not {chunk_bytes, chunk_size, dim: null, filename: chunk-A-B.bin}")
    return meta

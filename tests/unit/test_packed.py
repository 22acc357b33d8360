"""Packed datasets (facematch-data pack, data=packed) on synthetic images: the bytes and pixels served are the
folder tree's, the identity index is the same, an interrupted pack resumes to the very same shards, and a
damaged shard or an index that disagrees with the files stops with one line naming the shard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facematch.data.pack as pack_mod
from facematch.data.identities import IdentityIndex
from facematch.data.pack import pack
from facematch.errors import FacematchError
from facematch.data.shards import PACK_INDEX, CorruptPackError, PackedSet, open_packed
from facematch.data.source import source_from_config
from facematch.utils.io import sha256_file

PEOPLE = {"Ann_A": 3, "Bob_B": 1, "Cid_C": 4, "Dee_D": 2}


@pytest.fixture()
def folder(tmp_path) -> Path:
    """A tiny identity-folder dataset: JPEG and PNG crops of 112x112 noise, one unusable (empty) file."""
    root = tmp_path / "src"
    rng = np.random.default_rng(0)
    for person, n in PEOPLE.items():
        (root / person).mkdir(parents=True)
        for i in range(n):
            img = Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))
            suffix = "png" if i % 2 else "jpg"
            img.save(root / person / f"{person}_{i + 1:04d}.{suffix}")
    (root / "Bob_B" / "Bob_B_0009.jpg").write_bytes(b"")
    return root


def part_hashes(out: Path) -> dict:
    index = json.loads((out / PACK_INDEX).read_text())
    return {p["dir"]: p["files"] for p in index["parts"]}


def small_pack(src, out, **kw):
    return pack(src, out, prealigned="arcface_112x112", part_size=3, chunk_bytes="20KB", progress=False, **kw)


def test_pack_serves_the_folders_bytes_pixels_and_index(folder, tmp_path):
    out = tmp_path / "packed"
    index = small_pack(folder, out)
    folder_index = IdentityIndex.from_folder(folder)
    rels, labels = folder_index.paths_and_labels()
    assert index["count"] == len(rels) == 10 and len(index["parts"]) == 4
    assert index["dropped"] == {"empty": ["Bob_B/Bob_B_0009.jpg"]}
    assert index["identities"] == {k: v for k, v in PEOPLE.items()}
    assert index["preprocess"] == {"mode": "prealigned", "template": "arcface_112x112"}
    assert any(len(p["files"]) > 2 for p in index["parts"])  # several chunks in a part

    packed = open_packed(out)
    for rel in rels:
        assert packed.read(rel) == (folder / rel).read_bytes()
    assert IdentityIndex.from_folder(out).paths_and_labels() == (rels, labels)
    sub = ["Cid_C/Cid_C_0002.png", "Ann_A/Ann_A_0001.jpg", "Zed/Zed_0001.jpg"]
    a, b = IdentityIndex.from_paths(folder, sub), IdentityIndex.from_paths(out, sub)
    assert a.images == b.images and a.dropped == b.dropped == {"missing": ["Zed/Zed_0001.jpg"]}

    # the recorded preprocessing is the default; pixels equal the folder source's, keys never mix
    plain = source_from_config(folder, "sphereface_112x96", {"mode": "prealigned", "template": "arcface_112x112"})
    shards = source_from_config(out, "sphereface_112x96", {"mode": None})
    assert shards.mode == "prealigned" and shards.root == out.resolve() and shards.stamp_root is None
    assert shards.key != plain.key and shards.key.startswith(plain.key)
    for rel in rels:
        assert np.array_equal(shards(rel), plain(rel))
    centre = source_from_config(out, "sphereface_112x96", {"mode": "center"})
    assert np.array_equal(centre(rels[0]), source_from_config(folder, "sphereface_112x96", {"mode": "center"})(rels[0]))
    with pytest.raises(FacematchError, match="packed dataset"):
        source_from_config(out, "sphereface_112x96", {"mode": "center"}, align_raw=True)
    with pytest.raises(FacematchError, match="not in the packed dataset"):
        packed.read("Zed/Zed_0001.jpg")
    assert packed.verify(progress=False)["items"] == 10


def test_interrupted_pack_resumes_to_the_same_shards(folder, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    small_pack(folder, whole)

    out = tmp_path / "resumed"
    real, calls = pack_mod._write_part, []

    def dies_after_two(*args, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of the third part
        calls.append(args[3])
        return real(*args, **kw)

    monkeypatch.setattr(pack_mod, "_write_part", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        small_pack(folder, out)
    assert not (out / PACK_INDEX).exists()  # not a dataset yet
    with pytest.raises(CorruptPackError, match="not a finished packed dataset"):
        PackedSet.open(out)
    (out / ".part-00002.tmp").mkdir()  # what a killed writer leaves
    (out / ".part-00002.tmp" / "chunk-0-0.bin").write_bytes(b"half")
    monkeypatch.setattr(pack_mod, "_write_part", real)

    index = small_pack(folder, out)
    assert index["stats"]["parts_reused"] == 2 and index["stats"]["images_written"] == 10 - 6
    assert not list(out.glob(".part-*"))
    assert part_hashes(out) == part_hashes(whole)
    whole_items = json.loads((whole / PACK_INDEX).read_text())["items"]
    assert index["items"] == whole_items  # every image exactly once, the same ids
    packed = open_packed(out)
    assert sorted(packed.read_item(i)["rel"] for i in range(len(packed))) == sorted(whole_items)

    again = small_pack(folder, out)  # a finished pack: nothing redone
    assert again["stats"]["parts_written"] == 0

    with pytest.raises(FacematchError, match="other settings"):
        pack(folder, out, part_size=4, progress=False)
    assert pack(folder, out, part_size=4, progress=False, force=True)["count"] == 10


def test_damaged_shards_stop_with_one_line_naming_the_shard(folder, tmp_path):
    out = tmp_path / "packed"
    small_pack(folder, out)
    chunk = out / "part-00001" / "chunk-0-0.bin"
    data = chunk.read_bytes()

    chunk.write_bytes(data[:-10])  # truncated
    with pytest.raises(CorruptPackError) as err:
        PackedSet.open(out)
    msg = str(err.value)
    assert str(chunk) in msg and "truncated" in msg and "facematch-data pack" in msg and "\n" not in msg

    chunk.write_bytes(data[:-3] + bytes(b ^ 0xFF for b in data[-3:]))  # same size, corrupt bytes
    packed = PackedSet.open(out)  # sizes agree: only the hashes tell
    with pytest.raises(CorruptPackError, match=f"shard {chunk} does not match its sha256"):
        packed.verify(progress=False)

    chunk.unlink()
    with pytest.raises(CorruptPackError, match=f"shard {chunk} is missing"):
        PackedSet.open(out)

    # re-running pack redoes exactly the damaged part
    index = small_pack(folder, out)
    assert index["stats"]["parts_written"] == 1 and PackedSet.open(out).verify(progress=False)["items"] == 10


def test_index_that_disagrees_with_its_files(folder, tmp_path):
    out = tmp_path / "packed"
    small_pack(folder, out)
    lit = out / "part-00002" / "index.json"
    meta = json.loads(lit.read_text())
    meta["chunks"][0]["chunk_size"] += 1
    text = json.dumps(meta, sort_keys=True)
    lit.write_text(text[:-1] + " }")  # keep the recorded size: only the content disagrees
    index = json.loads((out / PACK_INDEX).read_text())
    index["parts"][2]["files"]["index.json"]["bytes"] = lit.stat().st_size
    (out / PACK_INDEX).write_text(json.dumps(index))
    with pytest.raises(CorruptPackError, match=f"shard index {lit} does not match its sha256"):
        PackedSet.open(out)
    index["parts"][2]["files"]["index.json"]["sha256"] = sha256_file(lit)  # recorded as it is now
    (out / PACK_INDEX).write_text(json.dumps(index))
    with pytest.raises(CorruptPackError, match=f"shard index {lit} disagrees"):
        PackedSet.open(out)

    # items out of place: the index names another image than the shard serves
    shutil.rmtree(out)
    small_pack(folder, out)
    index = json.loads((out / PACK_INDEX).read_text())
    a, b = list(index["items"])[:2]
    index["items"][a], index["items"][b] = index["items"][b], index["items"][a]
    (out / PACK_INDEX).write_text(json.dumps(index))
    with pytest.raises(CorruptPackError, match=r"shard .*part-00000.*chunk-0-\d+\.bin serves"):
        PackedSet.open(out).read(a)


def test_pack_refuses_bad_input(folder, tmp_path):
    with pytest.raises(FacematchError, match="dataset folder not found"):
        pack(tmp_path / "nope", tmp_path / "out", progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(FacematchError, match="not empty and holds no pack"):
        pack(folder, busy, progress=False)
    with pytest.raises(FacematchError, match="packed dataset not found"):
        PackedSet.open(tmp_path / "nothing")

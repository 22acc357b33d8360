"""Packed folders from elsewhere (issue 30): a part rewritten with litdata's own BinaryWriter so that
``image`` is a pickled object whose ``__reduce__`` creates a marker file, its sizes and sha256 updated in
facematch-pack.json, is refused with one line before litdata opens any part (the marker never appears);
so is every other index that is not what ``facematch-data pack`` writes. The same file, read by litdata
directly, does create the marker: the attack is real."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import litdata
import numpy as np
import pytest
from PIL import Image

import facematch.data.shards as shards
from facematch.data.pack import pack
from facematch.data.shards import PACK_INDEX, CorruptPackError, PackedSet
from facematch.utils.io import digest, sha256_file


class Touch:
    """Unpickled, it creates ``marker`` (``open(marker, "w")``): code from the file runs."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.fixture()
def packed(tmp_path) -> Path:
    src, out = tmp_path / "src", tmp_path / "packed"
    rng = np.random.default_rng(0)
    for person in ("Ann_A", "Bob_B"):
        (src / person).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(src / person / f"{person}_{i}.png")
    pack(src, out, part_size=3, progress=False)
    return out


def rerecord(out: Path) -> None:
    """Record every part's files as they are now in facematch-pack.json (what an attacker does)."""
    index = json.loads((out / PACK_INDEX).read_text())
    for part in index["parts"]:
        folder = out / part["dir"]
        part["files"] = {f.name: {"bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in sorted(folder.iterdir())
                         if f.name == "index.json" or f.name.endswith(".bin")}
    index["content_sha256"] = digest([p["files"] for p in index["parts"]], 64)
    (out / PACK_INDEX).write_text(json.dumps(index))


def poison(out: Path, marker: Path) -> Path:
    """Rewrite part 0 with litdata's BinaryWriter: ``image`` a pickled :class:`Touch` (declared ``pickle``)."""
    from litdata.streaming.writer import BinaryWriter

    part = out / "part-00000"
    rels = json.loads((part / "part.json").read_text())["rels"]
    tmp = out / ".evil"
    writer = BinaryWriter(str(tmp), chunk_bytes="16MB")
    for i, rel in enumerate(rels):
        writer.add_item(i, {"rel": rel, "label": 0, "image": Touch(marker)})
    writer.done()
    writer._merge_no_wait()
    shutil.rmtree(part)
    part.mkdir()
    for f in tmp.iterdir():
        if f.name == "index.json" or f.name.endswith(".bin"):
            shutil.copy(f, part / f.name)
    rerecord(out)
    return part


def no_litdata(monkeypatch) -> list:
    opened = []
    monkeypatch.setattr(litdata, "StreamingDataset", lambda *a, **k: opened.append(a) or pytest.fail("litdata opened a part"))
    return opened


def test_a_part_declaring_a_pickle_field_is_refused_before_any_chunk_is_read(packed, tmp_path, monkeypatch):
    marker = tmp_path / "MARKER"
    part = poison(packed, marker)
    assert json.loads((part / "index.json").read_text())["config"]["data_format"] == ["str", "int", "pickle"]
    real_reader = litdata.StreamingDataset
    opened = no_litdata(monkeypatch)
    for attempt in (lambda: PackedSet.open(packed), lambda: PackedSet.open(packed, check=False).read("Ann_A/Ann_A_0.png"),
                    lambda: PackedSet.open(packed, check=False).verify(progress=False)):
        with pytest.raises(CorruptPackError) as err:
            attempt()
        msg = str(err.value)
        assert "\n" not in msg and f"{part / 'index.json'}" in msg and '"pickle"' in msg and "before any chunk" in msg
    # an object-store URL (litdata's local: scheme standing in for s3://): the downloaded index is checked
    monkeypatch.setattr(shards, "URL_SCHEMES", shards.URL_SCHEMES + ("local:",))
    monkeypatch.setenv("FACEMATCH_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(CorruptPackError, match=r"local:.*part-00000/index\.json is not one facematch's pack writes"):
        PackedSet.open(f"local:{packed}").read("Ann_A/Ann_A_0.png")
    assert not opened and not marker.exists()

    # the control: litdata itself runs the file's code, so the checks above are what stop it
    real_reader(str(part))[0]
    assert marker.exists()


def edit_index(out: Path, change) -> None:
    lit = out / "part-00000" / "index.json"
    meta = json.loads(lit.read_text())
    change(meta)
    lit.write_text(json.dumps(meta))
    rerecord(out)


@pytest.mark.parametrize("change,why", [
    (lambda m: m["config"].update(data_spec=m["config"]["data_spec"].replace("builtins.dict", "collections.defaultdict")),
     "data_spec"),
    (lambda m: m["config"].update(compression="zstd"), "compressed"),
    (lambda m: m["config"].update(encryption="fernet"), "encrypted"),
    (lambda m: m["config"].update(item_loader="TokensLoader"), "another loader"),
    (lambda m: m["config"].update(serializer="pickle"), "unknown config keys"),
    (lambda m: m["chunks"][0].update(filename="../../part-00001/chunk-0-0.bin"), "chunk-A-B.bin"),
    (lambda m: m.update(shards=[]), "keys"),
    (lambda m: m["config"].update(data_format=["str", "int", "numpy"]), "declared"),
])
def test_every_other_litdata_index_is_refused(packed, monkeypatch, change, why):
    edit_index(packed, change)
    opened = no_litdata(monkeypatch)
    with pytest.raises(CorruptPackError, match=why):
        PackedSet.open(packed, check=False).read("Ann_A/Ann_A_0.png")
    assert not opened


@pytest.mark.parametrize("change,why", [
    (lambda i: i["parts"][0].update(dir="../elsewhere"), "not named part-NNNNN"),
    (lambda i: i["items"].update({"../../etc/passwd": i["items"].pop("Ann_A/Ann_A_0.png")}), "relative path"),
    (lambda i: i["parts"][1]["files"].update({"/etc/passwd": {"bytes": 1, "sha256": "0" * 64}}), "names a file"),
    (lambda i: i["parts"][1].update(first=0), "does not follow"),
    (lambda i: i.update(format="facematch-packed/0"), "format"),
])
def test_a_pack_index_that_is_not_what_pack_writes_is_refused(packed, change, why):
    index = json.loads((packed / PACK_INDEX).read_text())
    change(index)
    (packed / PACK_INDEX).write_text(json.dumps(index))
    with pytest.raises(CorruptPackError, match=why):
        PackedSet.open(packed, check=False)
    (packed / PACK_INDEX).write_text("[" * 100_000 + "]" * 100_000)  # nested past the recursion limit
    with pytest.raises(CorruptPackError, match="not valid JSON"):
        PackedSet.open(packed)

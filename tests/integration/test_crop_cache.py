"""The aligned-crop cache on real LFW photos: bad inputs, manifest counts, resume, atomic writes, on-demand
crops, a killed parallel prepare."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facematch.errors import UnreadableImageError
from facematch.utils import io as io_mod
from facematch.faces.align import FaceAligner
from facematch.faces.crop_cache import AlignedCache, crop_path, read_record
from facematch.faces.prepare import prepare
from tests.helpers import DATA

pytestmark = pytest.mark.usefixtures("data_dir")  # every test reads LFW photos

LFW = DATA / "lfw" / "lfw-deepfunneled"
GOOD = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0013.jpg"]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def messy_src(tmp_path) -> Path:
    """A dataset folder with two good faces and every kind of bad input."""
    src = tmp_path / "src"
    for rel in GOOD:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((LFW / rel).read_bytes())
    face = Image.open(LFW / GOOD[0]).convert("RGB")
    jpeg = (LFW / GOOD[1]).read_bytes()
    bad, modes = src / "Bad", src / "Modes"
    bad.mkdir()
    modes.mkdir()
    (bad / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("this is not an image\n")
    (bad / "huge.png").write_bytes(png_header(20000, 20000))
    (bad / "README.txt").write_text("ignored: not an image suffix\n")
    rgba = face.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(face.size))
    rgba.save(modes / "alpha.png")
    face.convert("L").save(modes / "gray.jpg")
    face.convert("CMYK").save(modes / "cmyk.jpg")
    Image.new("RGB", (250, 250), (127, 127, 127)).save(src / "Bad" / "noface.jpg")
    return src


EXPECTED_FAILURES = {
    "Bad/empty.jpg": "empty",
    "Bad/huge.png": "oversized",
    "Bad/notes.jpg": "not_image",
    "Bad/truncated.jpg": "corrupt",
}


def test_prepare_handles_every_bad_input(messy_src, tmp_path):
    out = tmp_path / "out"
    m = prepare(messy_src, out, "arcface_112x112", workers=1, progress=False)
    c = m["counts"]
    assert c["requested"] == 10  # README.txt is not an image file
    assert c["failed"] == 4 and c["failed_by_reason"] == {"corrupt": 1, "empty": 1, "not_image": 1, "oversized": 1}
    assert c["fallback"] == 1 and m["fallbacks"] == ["Bad/noface.jpg"]
    assert c["aligned"] == 5 and c["cached"] == 6 and c["made_this_run"] == 6
    assert c["converted_from_mode"] == {"CMYK": 1, "L": 1, "RGBA": 1}
    # the manifest on disk says the same, with template and detector settings
    disk = json.loads((out / "manifest.json").read_text())
    assert disk["counts"] == c and disk["template"] == "arcface_112x112" and disk["complete"] is True
    assert disk["detector"]["thresholds"] == [0.6, 0.7, 0.7] and disk["detector"]["select"] == "nearest_center"
    assert disk["versions"]["facenet-pytorch"]
    assert disk["format"] == "facematch-aligned-crops/2" and disk["src_root"] == str(messy_src.resolve())
    assert disk["key"].startswith("arcface_112x112-") and c["stale_remade"] == 0
    # failures list: one line per failed file, with its reason; no crop for them
    rows = [line.split("\t") for line in (out / "failures.tsv").read_text().splitlines()[1:]]
    assert {r[0]: r[1] for r in rows} == EXPECTED_FAILURES
    assert all(r[2] for r in rows)
    for rel in EXPECTED_FAILURES:
        assert not crop_path(out, rel).exists()
    # every crop carries its record
    assert read_record(crop_path(out, "Bad/noface.jpg"))["status"] == "fallback"
    st = (messy_src / "Bad/noface.jpg").stat()  # and the stamp of the file it was made from
    assert read_record(crop_path(out, "Bad/noface.jpg"))["src_size"] == st.st_size
    assert read_record(crop_path(out, "Bad/noface.jpg"))["src_mtime_ns"] == st.st_mtime_ns
    rec = read_record(crop_path(out, "Modes/cmyk.jpg"))
    assert rec["status"] == "ok" and rec["source_mode"] == "CMYK" and len(rec["landmarks"]) == 5
    crop = np.asarray(Image.open(crop_path(out, "Modes/alpha.png")))
    assert crop.shape == (112, 112, 3)


def test_rerun_skips_finished_files_and_retries_failures(messy_src):
    out = messy_src / "aligned"  # inside the dataset folder: its crops must not count as images
    prepare(messy_src, out, "arcface_112x112", workers=1, progress=False)
    done = crop_path(out, GOOD[0])
    before = done.stat().st_mtime_ns
    m = prepare(messy_src, out, "arcface_112x112", workers=1, progress=False)
    c = m["counts"]
    assert c["requested"] == 10 and c["made_this_run"] == 0 and c["already_done"] == 6 and c["failed"] == 4
    assert c["fallback"] == 1 and c["converted_from_mode"] == {"CMYK": 1, "L": 1, "RGBA": 1}  # from the records
    assert done.stat().st_mtime_ns == before
    m = prepare(messy_src, out, "arcface_112x112", [GOOD[0]], workers=1, progress=False, force=True)
    assert m["counts"]["made_this_run"] == 1 and done.stat().st_mtime_ns != before


def test_cache_get_creates_on_first_use_and_reads_back_losslessly(tmp_path):
    cache = AlignedCache(tmp_path / "c", "sphereface_112x96", LFW)
    rel = GOOD[1]
    assert not cache.has(rel)
    first = cache.get(rel)
    assert cache.has(rel) and first.shape == (112, 96, 3)
    again = AlignedCache(tmp_path / "c", "sphereface_112x96", LFW).get(rel)  # from disk
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, FaceAligner("sphereface_112x96").align_path(LFW / rel).image)
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["template"] == "sphereface_112x96"
    with pytest.raises(UnreadableImageError):
        bad = tmp_path / "bad"
        (bad / "x").mkdir(parents=True)
        (bad / "x" / "y.jpg").write_bytes(b"")
        AlignedCache(tmp_path / "c2", "arcface_112x112", bad).get("x/y.jpg")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    cache = AlignedCache(tmp_path / "c", "arcface_112x112", LFW)
    with pytest.raises(OSError, match="disk full"):
        cache.get(GOOD[0])
    assert not cache.has(GOOD[0])
    assert list((tmp_path / "c").rglob("*.tmp")) == []


def test_stale_temporaries_are_removed(tmp_path):
    out = tmp_path / "out"
    stale = out / "Aaron_Eckhart" / ".Aaron_Eckhart_0001.jpg.png.abc123.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    prepare(LFW, out, "arcface_112x112", [GOOD[0]], workers=1, progress=False)
    assert not stale.exists() and crop_path(out, GOOD[0]).is_file()


def test_killed_parallel_prepare_leaves_only_whole_crops_and_resumes(tmp_path, monkeypatch):
    rels = sorted(p.relative_to(LFW).as_posix() for d in ("Abdullah_Gul", "Alvaro_Uribe") for p in (LFW / d).glob("*.jpg"))[:30]
    listing = tmp_path / "list.txt"  # a 'pathA pathB label' list naming the images
    listing.write_text("".join(f"{a} {b} 0\n" for a, b in zip(rels[::2], rels[1::2])))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "facematch.cli.data", "prepare", str(LFW), str(out), "--pairs", str(listing),
           "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len(list(out.rglob("*.png"))) < 6 and proc.poll() is None:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, mid-flight
        proc.wait()
    made = sorted(out.rglob("*.png"))
    assert 6 <= len(made) < len(rels), proc.stderr.read().decode()[-2000:]
    for p in made:  # every visible crop is whole and carries its record
        assert np.asarray(Image.open(p)).shape == (112, 112, 3)
        assert read_record(p)["status"] in ("ok", "fallback")
    # a worker's crop matches an in-process alignment (MTCNN's float sums vary with torch's thread count,
    # which the workers set to 1, so allow one grey level on a few pixels)
    rel = made[0].relative_to(out).as_posix()[: -len(".png")]
    diff = np.abs(np.asarray(Image.open(made[0])).astype(int) - FaceAligner().align_path(LFW / rel).image)
    assert diff.max() <= 2 and diff.mean() < 0.05

    monkeypatch.setattr(io_mod, "STALE_TMP_S", -1.0)  # the killed run's temporaries are stale now
    m = prepare(LFW, out, "arcface_112x112", rels, workers=1, progress=False)
    assert m["counts"]["cached"] == len(rels)
    assert m["counts"]["already_done"] == len(made) and m["counts"]["made_this_run"] == len(rels) - len(made)
    assert list(out.rglob("*.tmp")) == []

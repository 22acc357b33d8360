"""``facematch-data`` on real LFW files: download (against a local HTTP server), prepare --pairs, verify,
check-cache, errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from facematch.cli.data import main
from facematch.cli.download import LFW_PAIRS_SHA256
from tests.helpers import DATA, download, error_line

pytestmark = pytest.mark.usefixtures("data_dir")  # every test reads LFW

LFW = DATA / "lfw" / "lfw-deepfunneled"
PEOPLE = ["Abdullah_Gul", "Aaron_Eckhart", "Al_Pacino"]  # three folders of the real LFW


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tgz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_entry(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range ``Range: bytes=N-`` support; logs what it was asked."""

    log: list[tuple[str, str | None, int]] = []
    honour_range = True

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        start = 0
        if rng and self.honour_range and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                type(self).log.append((self.path, rng, 0))
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        type(self).log.append((self.path, rng, len(body)))

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """An LFW look-alike web folder: a tgz of three real identities, the real pairs files, bad archives."""
    root = tmp_path_factory.mktemp("site")
    entries = []
    for person in PEOPLE:
        for img in sorted((LFW / person).glob("*.jpg")):
            entries.append(file_entry(f"lfw-deepfunneled/{person}/{img.name}", img.read_bytes()))
    (root / "lfw-deepfunneled.tgz").write_bytes(make_tgz(entries))
    for name in LFW_PAIRS_SHA256:
        (root / name).write_bytes((DATA / "lfw" / name).read_bytes())
    good = entries[0]
    evil = {
        "dotdot": [good, file_entry("../evil", b"owned")],
        "absolute": [good, file_entry("/tmp/facematch-evil-abs", b"owned")],
    }
    link = tarfile.TarInfo("lfw-deepfunneled/escape")
    link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
    evil["symlink"] = [good, (link, None)]
    for kind, members in evil.items():
        (root / kind).mkdir()
        (root / kind / "lfw-deepfunneled.tgz").write_bytes(make_tgz(members))
        for name in LFW_PAIRS_SHA256:
            (root / kind / name).write_bytes((DATA / "lfw" / name).read_bytes())
    return root


@pytest.fixture
def server(site):
    RangeHandler.log = []
    RangeHandler.honour_range = True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_download_end_to_end(server, site, tmp_path, capsys):
    archive_sum = sha256((site / "lfw-deepfunneled.tgz").read_bytes())
    dest = tmp_path / "lfw"
    assert download(dest, server, "--sha256", archive_sum) == 0
    out = capsys.readouterr().out
    assert archive_sum in out and LFW_PAIRS_SHA256["pairs.txt"] in out
    for person in PEOPLE:
        src = sorted((LFW / person).glob("*.jpg"))
        got = sorted((dest / "lfw-deepfunneled" / person).glob("*.jpg"))
        assert [p.name for p in got] == [p.name for p in src]
        assert got[0].read_bytes() == src[0].read_bytes()
    for name in LFW_PAIRS_SHA256:
        assert (dest / name).read_bytes() == (DATA / "lfw" / name).read_bytes()
    assert not list(dest.glob("*.part")) and not list(dest.glob(".*.extracting"))
    # a second run finds everything in place and fetches nothing
    n = len(RangeHandler.log)
    assert download(dest, server, "--sha256", archive_sum) == 0
    assert len(RangeHandler.log) == n
    # verify: every pairs.txt image outside the three folders is missing, and those inside are fine
    rc = main(["verify", str(dest / "lfw-deepfunneled"), "--pairs", str(dest / "pairs.txt"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1 and "7701 images used by" in out and "0 unreadable" in out
    ok, missing = map(int, re.search(r"(\d+) ok, (\d+) missing", out).groups())
    assert 0 < ok < 40 and ok + missing == 7701


def test_download_resumes_a_partial_file(server, site, tmp_path):
    data = (site / "lfw-deepfunneled.tgz").read_bytes()
    dest = tmp_path / "lfw"
    dest.mkdir()
    (dest / "lfw-deepfunneled.tgz.part").write_bytes(data[:5000])
    assert download(dest, server, "--sha256", sha256(data), "--no-extract") == 0
    asked = [(rng, sent) for path, rng, sent in RangeHandler.log if path.endswith(".tgz")]
    assert asked == [("bytes=5000-", len(data) - 5000)]
    assert (dest / "lfw-deepfunneled.tgz").read_bytes() == data
    assert not (dest / "lfw-deepfunneled").exists()  # --no-extract


def test_download_starts_over_when_the_server_ignores_range(server, site, tmp_path):
    RangeHandler.honour_range = False
    data = (site / "lfw-deepfunneled.tgz").read_bytes()
    dest = tmp_path / "lfw"
    dest.mkdir()
    (dest / "lfw-deepfunneled.tgz.part").write_bytes(b"garbage that is not a prefix")
    assert download(dest, server, "--sha256", sha256(data), "--no-extract") == 0
    assert (dest / "lfw-deepfunneled.tgz").read_bytes() == data


def test_download_rejects_a_wrong_checksum(server, tmp_path, capsys):
    dest = tmp_path / "lfw"
    with pytest.raises(SystemExit) as exc:
        download(dest, server, "--sha256", "0" * 64)
    err = error_line(capsys.readouterr().err)
    assert exc.value.code == 2 and err.startswith("error: could not fetch lfw-deepfunneled.tgz") and "wrong sha256" in err
    assert not (dest / "lfw-deepfunneled.tgz").exists() and not (dest / "lfw-deepfunneled.tgz.part").exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_download_refuses_an_archive_member_outside_dest(server, site, tmp_path, capsys, kind):
    dest = tmp_path / "deep" / "lfw"
    with pytest.raises(SystemExit) as exc:
        download(dest, server + kind + "/", "--sha256", sha256((site / kind / "lfw-deepfunneled.tgz").read_bytes()))
    err = error_line(capsys.readouterr().err)
    assert exc.value.code == 2 and "unsafe member" in err
    assert not (tmp_path / "deep" / "evil").exists() and not Path("/tmp/facematch-evil-abs").exists()
    assert not (dest / "lfw-deepfunneled").exists()  # nothing was extracted at all


def test_verify_reports_missing_and_unreadable(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "Al_Pacino").mkdir(parents=True)
    for i in (1, 2):
        name = f"Al_Pacino/Al_Pacino_{i:04d}.jpg"
        (root / name).write_bytes((LFW / name).read_bytes())
    (root / "Al_Pacino" / "Al_Pacino_0003.jpg").write_bytes((LFW / "Al_Pacino/Al_Pacino_0003.jpg").read_bytes()[:900])
    listing = tmp_path / "pairs.txt"
    listing.write_text("2 1\nAl_Pacino 1 2\nAl_Pacino 2 Nobody_Here 1\nAl_Pacino 1 3\nAl_Pacino 3 Nobody_Here 2\n")
    report = tmp_path / "report.tsv"
    rc = main(["verify", str(root), "--pairs", str(listing), "--report", str(report), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1 and "5 images used by" in out and "2 ok, 2 missing, 1 unreadable" in out
    rows = [line.split("\t")[:2] for line in report.read_text().splitlines()[1:]]
    assert sorted(rows) == [["missing", "Nobody_Here/Nobody_Here_0001.jpg"], ["missing", "Nobody_Here/Nobody_Here_0002.jpg"],
                            ["unreadable", "Al_Pacino/Al_Pacino_0003.jpg"]]
    listing.write_text("1\nAl_Pacino 1 2\nAl_Pacino 1 Al_Pacino 2\n")
    assert main(["verify", str(root), "--pairs", str(listing), "--no-progress"]) == 0


def test_prepare_cli_restricted_to_a_pairs_file(tmp_path, capsys):
    listing = tmp_path / "pairs.txt"
    listing.write_text("1\nAaron_Eckhart 1 1\nAbdullah_Gul 13 Al_Pacino 2\n")  # 3 distinct images
    out = tmp_path / "aligned"
    rc = main(["prepare", str(LFW), str(out), "--template", "sphereface_112x96", "--pairs", str(listing),
               "--workers", "1", "--select", "nearest_center", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "3 of 3 images aligned to sphereface_112x96" in printed and "img/s" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["requested"] == 3 and manifest["detector"]["select"] == "nearest_center"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "Aaron_Eckhart/Aaron_Eckhart_0001.jpg.png", "Abdullah_Gul/Abdullah_Gul_0013.jpg.png",
        "Al_Pacino/Al_Pacino_0002.jpg.png"]


def test_prepare_without_out_fills_the_keyed_folder_training_and_eval_read(tmp_path, capsys):
    from facematch.data.source import FaceSource

    listing = tmp_path / "pairs.txt"
    listing.write_text("1\nAaron_Eckhart 1 1\nAbdullah_Gul 13 Al_Pacino 2\n")  # 3 distinct images
    rels = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0013.jpg", "Al_Pacino/Al_Pacino_0002.jpg"]
    cache_dir = tmp_path / "aligned"
    args = ["prepare", str(LFW), "--template", "sphereface_112x96", "--pairs", str(listing), "--workers", "1",
            "--cache-dir", str(cache_dir), "--no-progress"]
    assert main(args) == 0
    source = FaceSource(LFW, "sphereface_112x96", mode="align", cache_dir=cache_dir)  # the default settings
    folder = source.aligned_cache_root
    assert [p.name for p in cache_dir.iterdir()] == [folder.name] and folder.name.startswith("sphereface_112x96-")
    assert f"3 of 3 images aligned to sphereface_112x96 in {folder}" in capsys.readouterr().out
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["detector"]["select"] == "nearest_center" and manifest["key"] == folder.name
    for rel in rels:  # what prepare made is what the source serves, nothing re-made
        source(rel)
    assert source.crop_cache.stats == {"served": 3}

    # other settings: a folder of their own beside the first, never a refusal
    assert main([*args, "--select", "largest"]) == 0
    capsys.readouterr()
    largest = FaceSource(LFW, "sphereface_112x96", mode="align", cache_dir=cache_dir, select="largest")
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([folder.name, largest.aligned_cache_root.name])
    assert json.loads((largest.aligned_cache_root / "manifest.json").read_text())["detector"]["select"] == "largest"
    assert main(args) == 0 and "0 now, 3 already done" in capsys.readouterr().out  # the first one, untouched


def test_prepare_into_a_named_out_made_with_other_settings_is_one_line_naming_the_fix(tmp_path, capsys):
    listing = tmp_path / "pairs.txt"
    listing.write_text("1\nAaron_Eckhart 1 1\nAbdullah_Gul 13 Al_Pacino 2\n")
    out = tmp_path / "out"
    base = ["prepare", str(LFW), str(out), "--pairs", str(listing), "--workers", "1", "--no-progress"]
    assert main(base) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*base, "--select", "largest"])
    err = error_line(capsys.readouterr().err)
    assert exc.value.code == 2 and "detector.select=nearest_center (not largest)" in err
    assert "pass those settings" in err and "prepare SRC` without OUT" in err


def test_check_cache_reports_stale_foreign_and_old_format(tmp_path, capsys):
    import numpy as np

    from facematch.embedding.cache import CACHE_FORMAT, EmbeddingCache
    from facematch.faces.crop_cache import AlignedCache
    from facematch.utils.io import file_stamp

    src = tmp_path / "src"
    rels = ["Al_Pacino/Al_Pacino_0001.jpg", "Al_Pacino/Al_Pacino_0002.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"]
    for rel in rels:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((LFW / rel).read_bytes())
    cache = tmp_path / "cache"  # a cache root holding aligned crops and embeddings, as .cache/facematch does
    crops = AlignedCache.under(cache / "aligned", "sphereface_112x96", src)
    for rel in rels:
        crops.get(rel)
    emb = EmbeddingCache(cache / "embeddings", "mobilefacenet-k", {"format": CACHE_FORMAT, "root": str(src.resolve())})
    emb.add(rels, np.zeros((3, 4)), [file_stamp(src / rel) for rel in rels])
    assert main(["check-cache", str(cache)]) == 0
    assert "2 cache folder(s), 6 entries: 0 stale (re-made on next use), 0 foreign" in capsys.readouterr().out

    # one photo changed in place, one deleted
    changed = src / rels[0]
    mtime = changed.stat().st_mtime_ns
    changed.write_bytes((LFW / "Al_Pacino/Al_Pacino_0003.jpg").read_bytes())
    os.utime(changed, ns=(mtime + 2_000_000_000, mtime + 2_000_000_000))
    (src / rels[1]).unlink()
    report = tmp_path / "report.tsv"
    assert main(["check-cache", str(cache), "--report", str(report)]) == 1
    assert "6 entries: 2 stale (re-made on next use), 2 foreign" in capsys.readouterr().out
    rows = sorted((r[0], Path(r[1]).parent.name, r[2]) for r in
                  (line.split("\t") for line in report.read_text().splitlines()[1:]))
    assert rows == [("foreign", "aligned", rels[1]), ("foreign", "embeddings", rels[1]),
                    ("stale", "aligned", rels[0]), ("stale", "embeddings", rels[0])]
    # a cache checked against another source folder: every entry is foreign
    assert main(["check-cache", str(crops.root), "--src", str(LFW)]) == 1
    out = capsys.readouterr().out
    assert "3 entries, 0 stale, 3 foreign" in out and f"made from {src.resolve()}, not {LFW}" in out

    # old-format folders are reported, one line each, and fail the check
    old = cache / "aligned_nearest_center" / "sphereface_112x96"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"format": "facematch-aligned-crops/1", "template": "sphereface_112x96"}))
    old_emb = cache / "embeddings" / "mobilefacenet-old"
    old_emb.mkdir()
    (old_emb / "meta.json").write_text(json.dumps({"format": "facematch-embeddings/1"}))
    np.savez(old_emb / "part-0.npz", paths=np.asarray(rels), emb=np.zeros((3, 4), np.float32))
    assert main(["check-cache", str(cache)]) == 1
    out = capsys.readouterr().out
    old_lines = [line for line in out.splitlines() if line.startswith("old-format")]
    assert len(old_lines) == 2 and "2 old-format folder(s)" in out
    assert any("format 'facematch-aligned-crops/1'" in line and "delete that folder" in line for line in old_lines)
    assert any("format 'facematch-embeddings/1'" in line and "3 embeddings without source stamps" in line
               for line in old_lines)

    # user errors: one line
    for bad, needle in ((tmp_path / "nowhere", "error: cache folder not found"), (src, "holds no facematch cache")):
        with pytest.raises(SystemExit) as exc:
            main(["check-cache", str(bad)])
        assert exc.value.code == 2 and needle in error_line(capsys.readouterr().err)


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prepare", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--no-progress"])
    err = error_line(capsys.readouterr().err)
    assert exc.value.code == 2 and err.startswith("error: dataset folder not found")
    bad = tmp_path / "bad_pairs.txt"
    bad.write_text("10 300\nonly one line\n")
    with pytest.raises(SystemExit):
        main(["verify", str(LFW), "--pairs", str(bad)])
    assert "header promises" in capsys.readouterr().err


# The getting-started path (docs/getting-started.md) against a local server: the MobileFaceNet weights and an
# LFW subset are downloaded, then the README's main command (raw photos instead of the aligned crops, no test
# fold: the subset has 12 people) trains on what was fetched, with every warning an error, and ends with the
# run summary.
GETTING_STARTED_PEOPLE = ["Aaron_Peirsol", "Aaron_Sorkin", "Abdel_Nasser_Assidi", "Abdoulaye_Wade", "Abdullah",
                          "Abdullah_al-Attiyah", "Abdullatif_Sener", "Abel_Pacheco", "Abid_Hamid_Mahmud_Al-Tikriti",
                          "Abdullah_Gul", "Al_Pacino", "Adam_Sandler"]


@pytest.mark.slow
def test_downloaded_weights_and_lfw_run_the_main_command_quietly(server, site, tmp_path, mfn_weights, capsys,
                                                                   monkeypatch):
    import warnings

    import facematch.train
    from facematch.cli.download import WEIGHTS
    from tests.helpers import FAST

    weights = WEIGHTS["mobilefacenet"]
    (site / "weights").mkdir(exist_ok=True)
    (site / "weights" / weights.name).write_bytes(mfn_weights.read_bytes())
    (site / "people").mkdir(exist_ok=True)
    photos = [file_entry(f"lfw-deepfunneled/{p}/{img.name}", img.read_bytes())
              for p in GETTING_STARTED_PEOPLE for img in sorted((LFW / p).glob("*.jpg"))[:4]]
    (site / "people" / "lfw-deepfunneled.tgz").write_bytes(make_tgz(photos))
    for name in LFW_PAIRS_SHA256:
        (site / "people" / name).write_bytes((DATA / "lfw" / name).read_bytes())

    dest = tmp_path / "get"
    (dest / "weights").mkdir(parents=True)
    half = mfn_weights.read_bytes()[: mfn_weights.stat().st_size // 2]
    (dest / "weights" / f"{weights.name}.part").write_bytes(half)  # an interrupted earlier download
    assert main(["download", "mobilefacenet", "--dest", str(dest / "weights"), "--base-url", server + "weights",
                 "--no-progress"]) == 0
    assert (f"/weights/{weights.name}", f"bytes={len(half)}-", mfn_weights.stat().st_size - len(half)) in RangeHandler.log
    fetched = dest / "weights" / weights.name
    assert sha256(fetched.read_bytes()) == weights.hash and f"arch.weights={fetched}" in capsys.readouterr().out
    assert download(dest / "lfw", server + "people/", "--sha256",
                    sha256((site / "people" / "lfw-deepfunneled.tgz").read_bytes())) == 0

    argv = ["facematch-train", "arch=mobilefacenet", f"arch.weights={fetched}", "arch.freeze=true", "loss=triplet",
            "data=lfw_photos", f"data.root={dest}/lfw/lfw-deepfunneled", f"data.pairs={dest}/lfw/pairs.txt",
            "data.val_fraction=0.3", "trainer.max_epochs=1", *FAST, f"paths.log_dir={tmp_path}/logs"]
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the entry point's own filter (facematch.quiet) still applies
        facematch.train.main()
    captured = capsys.readouterr()
    assert "Warning" not in captured.out + captured.err
    summary = captured.out[captured.out.index("\nResult\n"):]
    assert re.search(r"no fold scored \(needs data.test_fold=K and evaluate=true\); best validation epoch: "
                     r"val/auc [01]\.\d{4}\n", summary)
    (ckpt,) = (tmp_path / "logs").glob("runs/train/*/checkpoints/epoch_000.ckpt")
    assert f"best checkpoint  {ckpt}" in summary and f"tensorboard --logdir {ckpt.parents[1]}/tensorboard" in summary

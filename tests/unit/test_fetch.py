"""Fetching published files (facematch/utils/fetch.py, data/lfw_files.py, models/weights.py + models/backbones/) against local
servers (127.0.0.1, in this process) serving synthetic bytes: mirror fallback on a corrupt file or an HTTP
error, resuming a partial transfer, the hash override, and the one line an offline run gets."""

from __future__ import annotations

import hashlib

import pytest

from facematch.errors import DataNotFoundError, FacematchError, WeightsError
from facematch.utils.fetch import FetchError, Remote, fetch_file
from tests.mirrors import serve

BODY = bytes(range(256)) * 400  # 100 kB
REMOTE = Remote("thing.bin", hashlib.sha256(BODY).hexdigest(), (("figshare", "files/1"), ("umass", "thing.bin")))
UNREACHABLE = "http://127.0.0.1:9/"


@pytest.fixture
def mirrors(tmp_path, monkeypatch):
    """figshare serves a corrupted thing.bin, UMass the right one; both servers' request logs."""
    (tmp_path / "fig" / "files").mkdir(parents=True)
    (tmp_path / "fig" / "files" / "1").write_bytes(BODY[:-1] + b"x")
    (tmp_path / "um").mkdir()
    (tmp_path / "um" / "thing.bin").write_bytes(BODY)
    with serve({"figshare": tmp_path / "fig", "umass": tmp_path / "um"}) as servers:
        monkeypatch.setenv("FACEMATCH_MIRROR_FIGSHARE", servers["figshare"].url)
        monkeypatch.setenv("FACEMATCH_MIRROR_UMASS", servers["umass"].url)
        yield servers


@pytest.fixture
def offline(monkeypatch, tmp_path):
    for name in ("FIGSHARE", "UMASS", "GITHUB"):
        monkeypatch.setenv(f"FACEMATCH_MIRROR_{name}", UNREACHABLE)
    monkeypatch.setenv("FACEMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACEMATCH_WEIGHTS_DIR", str(tmp_path / "weights"))


def test_a_corrupt_mirror_is_left_for_the_next_and_said_so(mirrors, tmp_path, capsys):
    path = fetch_file(REMOTE, tmp_path / "dest", progress=False)
    assert path.read_bytes() == BODY and not list((tmp_path / "dest").glob("*.part"))
    assert "thing.bin: figshare: wrong sha256; trying the next mirror" in capsys.readouterr().err
    assert mirrors["figshare"].requests == ["/files/1"] and mirrors["umass"].requests == ["/thing.bin"]
    fetch_file(REMOTE, tmp_path / "dest", progress=False)  # there with the right hash: nothing is asked
    assert len(mirrors["umass"].requests) == 1


def test_an_http_error_is_left_for_the_next_mirror(mirrors, tmp_path, capsys):
    (tmp_path / "fig" / "files" / "1").unlink()
    assert fetch_file(REMOTE, tmp_path / "dest", progress=False).read_bytes() == BODY
    assert "thing.bin: figshare: HTTP 404; trying the next mirror" in capsys.readouterr().err


def test_an_interrupted_transfer_resumes_with_a_range_request(mirrors, tmp_path):
    only_umass = Remote(REMOTE.name, REMOTE.hash, (("umass", "thing.bin"),))
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "thing.bin.part").write_bytes(BODY[:12345])
    assert fetch_file(only_umass, tmp_path / "dest", progress=False).read_bytes() == BODY
    assert mirrors["umass"].requests == ["/thing.bin bytes=12345-"]


def test_every_mirror_wrong_is_one_error_naming_each(mirrors, tmp_path):
    (tmp_path / "um" / "thing.bin").write_bytes(b"not it")
    with pytest.raises(FetchError) as exc:
        fetch_file(REMOTE, tmp_path / "dest", progress=False)
    assert exc.value.reasons == ["figshare: wrong sha256", "umass: wrong sha256"] and not exc.value.offline
    assert not (tmp_path / "dest" / "thing.bin").exists() and not (tmp_path / "dest" / "thing.bin.part").exists()


def test_the_hashes_file_replaces_a_published_hash(mirrors, tmp_path, monkeypatch):
    other = b"a subset built for a test"
    (tmp_path / "um" / "thing.bin").write_bytes(other)
    (tmp_path / "hashes.txt").write_text(f"# name hash\nthing.bin {hashlib.sha256(other).hexdigest()}\n")
    monkeypatch.setenv("FACEMATCH_FETCH_HASHES", str(tmp_path / "hashes.txt"))
    assert fetch_file(REMOTE, tmp_path / "dest", progress=False).read_bytes() == other


def test_no_mirror_reachable_is_offline(offline, tmp_path):
    with pytest.raises(FetchError) as exc:
        fetch_file(REMOTE, tmp_path / "dest", progress=False)
    assert exc.value.offline and exc.value.reasons == ["figshare: connection refused", "umass: connection refused"]


def test_present_lfw_is_not_fetched_and_missing_lfw_offline_is_one_line_naming_the_fix(offline, tmp_path):
    from facematch.data.lfw_files import ensure_lfw

    lfw = tmp_path / "data" / "lfw"
    (lfw / "lfw-deepfunneled").mkdir(parents=True)
    (lfw / "pairs.txt").write_text("1\t1\n")
    ensure_lfw(lfw / "lfw-deepfunneled", lfw / "pairs.txt")  # present: nothing asked of the (unreachable) mirrors
    ensure_lfw(tmp_path / "elsewhere", tmp_path / "elsewhere.txt")  # not the data folder's LFW: left to the data module
    (lfw / "lfw-deepfunneled").rmdir()
    with pytest.raises(DataNotFoundError) as exc:
        ensure_lfw(lfw / "lfw-deepfunneled", lfw / "pairs.txt")
    line = str(exc.value)
    assert "\n" not in line and line.startswith(f"LFW (lfw-deepfunneled/ and the pairs files) is not in {lfw}/")
    assert "umass: connection refused" in line and f"`facematch-data download lfw --dest {lfw}`" in line
    assert "FACEMATCH_DATA_DIR" in line


def test_missing_reference_crops_name_the_option_facematch_can_fetch(offline, tmp_path):
    from facematch.data.lfw_files import ensure_lfw

    with pytest.raises(DataNotFoundError) as exc:
        ensure_lfw(tmp_path / "data" / "lfw-aligned-112", tmp_path / "data" / "lfw" / "pairs.txt")
    assert "data=lfw_photos_mtcnn" in str(exc.value) and "lfw.bin" in str(exc.value) and "download" not in str(exc.value)


def test_missing_weights_offline_name_the_command_and_the_variable(offline, tmp_path):
    from facematch.models.backbones import BACKBONES

    with pytest.raises(WeightsError) as exc:
        BACKBONES["mobilefacenet"].pretrained_file("casia-webface")
    line = str(exc.value)
    assert f"`facematch-data download mobilefacenet --dest {tmp_path / 'weights'}`" in line
    assert "FACEMATCH_WEIGHTS_DIR" in line and "github: connection refused" in line
    with pytest.raises(FacematchError, match="choose one of: casia-webface or null"):
        BACKBONES["mobilefacenet"].pretrained_file("vggface2")


def test_the_main_command_offline_with_both_missing_is_one_line_naming_both(offline, cfg_factory):
    from facematch.train import fetch_inputs

    cfg = cfg_factory("arch=mobilefacenet", "arch.pretrained=casia-webface", "data=lfw_photos_mtcnn")
    with pytest.raises(FacematchError) as exc:
        fetch_inputs(cfg)
    line = str(exc.value)
    assert "\n" not in line and "FACEMATCH_WEIGHTS_DIR" in line and "FACEMATCH_DATA_DIR" in line
    assert "download mobilefacenet" in line and "download lfw" in line


def test_a_run_that_finds_another_fetching_waits_and_then_fetches_nothing(offline, tmp_path):
    import threading
    import time

    from facematch.data.lfw_files import ensure_lfw
    from facematch.utils.locks import folder_lock

    lfw = tmp_path / "data" / "lfw"
    outcome = []
    with folder_lock(lfw, timeout=0, what="test", fix="-"):  # "another run" is fetching
        waiter = threading.Thread(target=lambda: outcome.append(ensure_lfw(lfw / "lfw-deepfunneled", lfw / "pairs.txt")))
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive()  # waiting on the lock, not failing against the unreachable mirrors
        (lfw / "lfw-deepfunneled").mkdir()
        (lfw / "pairs.txt").write_text("1\t1\n")
    waiter.join(30)
    assert outcome == [None]  # it found the files there and asked no mirror (offline: asking would have failed)

"""Writers of one gallery in one process, on synthetic vectors: the folder lock (waits once, gives up with
one line), changes replayed on the newest version (two writers, a new gallery, add + remove), a reader
that falls two commits behind, and the web page reloading a gallery that changed under it."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from facematch.embedding.photos import Face, PhotoFaces
from facematch.errors import FacematchError
from facematch.gallery import version
from facematch.gallery.store import Gallery
from facematch.utils.locks import LOCK_NAME, folder_lock

SETTINGS = {"arch": "mobilefacenet", "flip": "concat"}
FP = "ab" * 32


def vec(seed, d=8):
    v = np.random.default_rng(seed).normal(size=d).astype(np.float32)
    return v / np.linalg.norm(v)


def crop():
    return np.zeros((8, 8, 3), np.uint8)


def add(g, name, seed):
    g.add(name, f"/p/{name}/{seed}.jpg", vec(seed), crop(), stamp=[1, seed])


@pytest.fixture
def gallery(tmp_path):
    g = Gallery.create(tmp_path / "g", FP, SETTINGS)
    add(g, "ann", 1)
    g.save()
    return g.root


@pytest.fixture
def held(tmp_path):
    """The lock of ``tmp_path/g`` held by another thread until the test sets the returned event."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with folder_lock(tmp_path / "g", timeout=0, what="holder", fix=""):
            taken.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert taken.wait(30)
    yield release
    release.set()
    t.join()


def test_a_waiting_writer_says_so_once_and_gives_up_with_one_line(gallery, held, capsys):
    g = Gallery.open(gallery)
    add(g, "bob", 2)
    g.lock_timeout = 0.3
    with pytest.raises(FacematchError) as e:
        g.save()
    msg = str(e.value)
    assert "\n" not in msg and f"{gallery} is locked by another process writing it (waited 0.3 s" in msg
    assert f"{gallery / LOCK_NAME} is held" in msg and "--lock-timeout SECONDS" in msg
    err = capsys.readouterr().err
    assert err.count("waiting for another process writing") == 1 and "(up to 0.3 s)" in err
    assert Gallery.open(gallery).names == ["ann"]  # nothing written


def test_a_writer_waits_for_the_lock_then_commits(gallery, held, capsys):
    g = Gallery.open(gallery)
    add(g, "bob", 2)
    threading.Timer(0.3, held.set).start()  # the other writer finishes meanwhile
    g.save()
    assert Gallery.open(gallery).names == ["ann", "bob"]
    assert capsys.readouterr().err.count("waiting for another process writing") == 1


def test_two_writers_of_one_version_both_land(gallery):
    """Both read the same version; each save replays its own change on the newest one."""
    a, b = Gallery.open(gallery), Gallery.open(gallery)
    add(a, "bob", 2)
    add(b, "cy", 3)
    b.remove("ann")  # b's removal commits first (with its add)
    a.save()
    g = Gallery.open(gallery)
    assert g.counts() == {"bob": 1, "cy": 1}
    np.testing.assert_array_equal(g.embeddings, np.stack([vec(3), vec(2)]))
    assert a.counts() == g.counts() and not a.changed()  # a is now the newest version
    assert all(g.crop_path(e).is_file() for e in g.entries) and not (gallery / "faces" / "ann").exists()


def test_a_remove_of_a_name_another_writer_removed_is_one_line(gallery):
    a, b = Gallery.open(gallery), Gallery.open(gallery)
    assert a.remove("ann") == 1
    with pytest.raises(FacematchError, match="no identity 'ann' in gallery"):
        b.remove("ann")


def test_two_new_galleries_in_one_folder_merge(tmp_path):
    a, b = Gallery.new(tmp_path / "g", FP, SETTINGS), Gallery.new(tmp_path / "g", FP, SETTINGS)
    add(a, "ann", 1)
    add(b, "bob", 2)
    a.save()
    b.save()  # the gallery a created is added to, not refused
    assert Gallery.open(tmp_path / "g").names == ["ann", "bob"]
    c = Gallery.new(tmp_path / "h", "cd" * 32, SETTINGS)
    Gallery.create(tmp_path / "h", FP, SETTINGS)
    add(c, "cy", 3)
    with pytest.raises(FacematchError, match="enrolled with another model"):
        c.save()


def test_open_or_new_opens_a_gallery_made_meanwhile(tmp_path):
    known = Gallery.existing(tmp_path / "g")
    assert known is None
    Gallery.create(tmp_path / "g", FP, SETTINGS)  # another writer's first commit
    g = Gallery.open_or_new(tmp_path / "g", FP, SETTINGS, index="hnsw", known=known)
    assert g.stamp is not None and g.index_kind == "hnsw"
    g.save()
    assert Gallery.open(tmp_path / "g").index_kind == "hnsw"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(FacematchError, match="exists and is not an empty folder"):
        Gallery.existing(tmp_path / "busy")


def test_a_reader_two_commits_behind_reads_the_newest_version(gallery, monkeypatch):
    """Between reading the manifest and loading its embeddings, two commits delete that file: the reader
    resolves the pointer again instead of failing or mixing versions."""
    real_load, commits = np.load, []

    def two_commits_first(path, *args, **kwargs):
        if not commits:
            commits.append(path)
            for name, seed in (("bob", 2), ("cy", 3)):
                g = Gallery.open(gallery)
                add(g, name, seed)
                g.save()
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(version.np, "load", two_commits_first)
    g = Gallery.open(gallery)
    assert not commits[0].exists()  # the version first resolved is gone
    assert g.names == ["ann", "bob", "cy"] and g.embeddings.shape == (3, 8) and not g.changed()


class FakeEmbedder:
    """A FaceEmbedder stand-in for the web page: one face per upload, whose vector is ``vec(seed)``."""

    def __init__(self, seed):
        self.model, self.settings, self.seed = SimpleNamespace(fingerprint=FP), dict(SETTINGS), seed

    def faces(self, image, name, select=None, all_faces=False):
        return PhotoFaces(name, image, [Face(np.array([0, 0, 8, 8], np.float32), np.zeros((5, 2)), 0.99, crop())], 1)

    def views(self, crops):
        return np.stack([vec(self.seed) for _ in crops])[:, None]

    def embed_crops(self, crops, views=None):
        return (self.views(crops) if views is None else views)[:, 0]


def test_the_web_page_reloads_a_gallery_that_changed(gallery):
    from facematch.app.actions import AppState, run_search

    state = AppState(FakeEmbedder(seed=2), {"threshold": 0.5, "text": "t"}, "fake", Gallery.open(gallery),
                     search_decision={"threshold": 0.5, "text": "t"})
    assert state.gallery_text.endswith("1 identities, 1 faces (version 2; reloaded when the gallery changes)")
    g = Gallery.open(gallery)  # another process enrols bob while the page is served
    add(g, "bob", 2)
    g.save()
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="PNG")
    html = run_search(state, (buf.getvalue(), "probe.png"), top_k=1, all_faces=False)
    assert 'id="identity-1">bob<' in html  # found in the version committed after the page loaded
    assert "2 identities, 2 faces (version 3;" in state.gallery_text

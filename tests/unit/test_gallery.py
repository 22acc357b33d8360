"""The gallery on synthetic vectors and crops: the faiss index against brute force, the store's round trip,
incremental enrolment, damaged galleries, per-identity aggregation, model checks, and the open-set
metrics hand-checked on tiny scores."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from facematch.embedding.photos import Face, PhotoFaces
from facematch.errors import FacematchError, MultipleFacesError, NoFaceError, UnreadableImageError
from facematch.eval.open_set import open_set_report, rates_at_threshold, threshold_at_far
from facematch.gallery.enroll import enroll_folder, summary_text, write_failures_tsv
from facematch.gallery.index import IVF_MIN_VECTORS, VectorIndex
from facematch.gallery.search import search_photo
from facematch.gallery.store import MANIFEST, Gallery

SETTINGS = {"arch": "mobilefacenet", "template": "arcface_112x112", "flip": "concat", "precision": "fp32",
            "device": "cpu"}
FP = "ab" * 32


def unit(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def crop(v=0):
    return np.full((8, 8, 3), v, np.uint8)


@pytest.fixture
def gallery(tmp_path):
    return Gallery.create(tmp_path / "g", FP, SETTINGS)


# ------------------------------------------------------------------------------------------ index

@pytest.mark.parametrize("k", [1, 5, 40])
def test_flat_index_is_brute_force(k):
    rng = np.random.default_rng(0)
    g, q = unit(rng, 30), unit(rng, 7)
    sims, ids = VectorIndex(g).search(q, k)
    full = q @ g.T
    kk = min(k, 30)
    expect = np.argsort(-full, axis=1, kind="stable")[:, :kk]
    np.testing.assert_allclose(sims[:, :kk], np.take_along_axis(full, expect, 1), atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(full, ids[:, :kk], 1), sims[:, :kk], atol=1e-5)
    if k > 30:  # padding past the gallery
        assert (ids[:, 30:] == -1).all() and np.isneginf(sims[:, 30:]).all()


def test_approximate_indexes_find_the_exact_neighbour():
    rng = np.random.default_rng(1)
    g = unit(rng, IVF_MIN_VECTORS, 32)
    q = g[:50] + 0.05 * unit(rng, 50, 32)
    for kind in ("hnsw", "ivf"):
        idx = VectorIndex(g, kind)
        assert idx.kind == kind
        _, ids = idx.search(q, 1)
        assert (ids[:, 0] == np.arange(50)).mean() >= 0.95, kind
    assert VectorIndex(g[:100], "ivf").kind == "flat"  # too few vectors to train cells on


def test_unknown_index_kind_is_a_user_error():
    with pytest.raises(FacematchError, match="unknown index 'annoy'; choose one of: flat, hnsw, ivf"):
        VectorIndex(np.zeros((2, 4), np.float32), "annoy")


# ------------------------------------------------------------------------------------------ store

def test_round_trip_add_remove_reopen(gallery):
    rng = np.random.default_rng(2)
    v = unit(rng, 5)
    for i, name in enumerate(["ann", "ann", "bob", "cy", "cy"]):
        gallery.add(name, f"/photos/{name}/{i}.jpg", v[i], crop(i), box=[1, 2, 30, 40], stamp=[10, i])
    gallery.save()
    g = Gallery.open(gallery.root)
    assert g.names == ["ann", "bob", "cy"] and g.counts() == {"ann": 2, "bob": 1, "cy": 2}
    np.testing.assert_array_equal(g.embeddings, v)
    assert all(g.crop_path(e).is_file() for e in g.entries)
    assert g.entries[2] == {"name": "bob", "photo": "/photos/bob/2.jpg", "stamp": [10, 2],
                            "box": [1.0, 2.0, 30.0, 40.0], "crop": g.entries[2]["crop"]}
    assert g.remove("cy") == 2
    g = Gallery.open(gallery.root)
    assert g.names == ["ann", "bob"] and len(g) == 3 and not (g.root / "faces" / "cy").exists()
    np.testing.assert_array_equal(g.embeddings, v[:3])
    # generations 1 (create), 2 (save), 3 (remove): the current one and the previous one (for a reader that
    # read the manifest just before the commit) are kept, older ones deleted
    assert sorted(f.name for f in g.root.glob("embeddings.*.npy")) == ["embeddings.2.npy", "embeddings.3.npy"]
    with pytest.raises(FacematchError, match=r"no identity 'zed' in gallery .*facematch-gallery list --gallery"):
        g.remove("zed")


def test_incremental_add_skips_unchanged_and_replaces_changed(gallery):
    rng = np.random.default_rng(3)
    v = unit(rng, 3)
    gallery.add("ann", "/p/ann/1.jpg", v[0], crop(), stamp=[5, 1])
    gallery.save()
    assert gallery.enrolled("ann", "/p/ann/1.jpg", [5, 1])
    assert not gallery.enrolled("ann", "/p/ann/1.jpg", [5, 2])  # the file changed
    assert not gallery.enrolled("bob", "/p/ann/1.jpg", [5, 1])
    gallery.add("ann", "/p/ann/1.jpg", v[1], crop(), stamp=[5, 2])  # re-enrolled: replaces its entry
    gallery.add("bob", "/p/bob/1.jpg", v[2], crop(), stamp=[7, 1])
    gallery.save()
    g = Gallery.open(gallery.root)
    assert len(g) == 2 and g.enrolled("ann", "/p/ann/1.jpg", [5, 2])
    np.testing.assert_array_equal(g.embeddings, v[1:])


def test_create_refuses_a_used_folder(tmp_path, gallery):
    with pytest.raises(FacematchError, match="already holds a gallery"):
        Gallery.create(gallery.root, FP, SETTINGS)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(FacematchError, match="exists and is not an empty folder"):
        Gallery.create(tmp_path / "busy", FP, SETTINGS)


def test_missing_and_damaged_galleries_are_one_line_errors(tmp_path, gallery):
    with pytest.raises(FacematchError, match=r"gallery not found: .*nowhere; enrol one with `facematch-gallery enroll"):
        Gallery.open(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FacematchError, match="is not a facematch gallery"):
        Gallery.open(tmp_path / "plain")
    gallery.add("ann", "/p/a.jpg", unit(np.random.default_rng(0), 1)[0], crop())
    gallery.save()
    manifest = gallery.root / MANIFEST
    good = manifest.read_text()
    manifest.write_text(good[: len(good) // 2])  # a torn write (what the atomic rename prevents)
    with pytest.raises(FacematchError) as e:
        Gallery.open(gallery.root)
    msg = str(e.value)
    assert "\n" not in msg and f"{manifest} is corrupt" in msg and "re-enrol" in msg
    doc = json.loads(good)
    doc["entries"].append(dict(doc["entries"][0]))
    manifest.write_text(json.dumps(doc))
    with pytest.raises(FacematchError, match="2 entries in manifest.json but embeddings of shape"):
        Gallery.open(gallery.root)
    (gallery.root / doc["embeddings"]).unlink()
    with pytest.raises(FacematchError, match="cannot be read"):
        Gallery.open(gallery.root)


def test_an_unsaved_add_leaves_the_saved_gallery_intact(gallery):
    """Crops, embeddings and manifest are written only at save: a run killed in between keeps the previous
    gallery and leaves no file of the unsaved face."""
    rng = np.random.default_rng(4)
    gallery.add("ann", "/p/a.jpg", unit(rng, 1)[0], crop())
    gallery.save()
    gallery.add("bob", "/p/b.jpg", unit(rng, 1)[0], crop())  # then "killed"
    g = Gallery.open(gallery.root)
    assert g.names == ["ann"] and len(g.embeddings) == 1 and not (g.root / "faces" / "bob").exists()


def test_bad_identity_names_are_refused(gallery):
    for bad in ("", "..", "a/b", ".hidden"):
        with pytest.raises(FacematchError, match="not a usable folder name"):
            gallery.add(bad, "/p/x.jpg", np.ones(4, np.float32) / 2, crop())


# ------------------------------------------------------------------------------------------ search

def test_search_aggregates_per_identity(gallery):
    """An identity with many faces near the query takes one place, at its best similarity, and the next
    identities still come back (the index is asked again for more faces)."""
    rng = np.random.default_rng(5)
    q = unit(rng, 1)[0]
    for i in range(30):  # 30 faces of ann, all closer to q than bob's or cy's
        gallery.add("ann", f"/p/ann/{i}.jpg", q + 0.05 * unit(rng, 1)[0], crop())
    gallery.add("bob", "/p/bob/1.jpg", q + 0.8 * unit(rng, 1)[0], crop())
    gallery.add("cy", "/p/cy/1.jpg", -q, crop())
    (res,) = gallery.search(q[None], top_k=3)
    assert [r["name"] for r in res] == ["ann", "bob", "cy"]
    sims = gallery.embeddings @ q
    best_ann = int(np.argmax(sims[:30]))
    assert [r["similarity"] for r in res] == pytest.approx([sims[best_ann], sims[30], sims[31]], abs=1e-5)
    assert res[0]["crop"] == str(gallery.crop_path(gallery.entries[best_ann]).resolve())
    assert res[0]["photo"] == f"/p/ann/{best_ann}.jpg"
    assert len(gallery.search(q[None], top_k=10)[0]) == 3  # no more identities than there are


def test_search_of_an_empty_gallery_says_enrol(gallery):
    with pytest.raises(FacematchError, match="has no faces yet; enrol some"):
        gallery.search(np.ones((1, 4), np.float32), 1)


def test_model_mismatch_is_refused(gallery):
    gallery.check_model(FP, {**SETTINGS, "precision": "bf16"})  # precision does not change the embedding space
    with pytest.raises(FacematchError, match=r"enrolled with another model \(mobilefacenet, weights sha256 ababab"):
        gallery.check_model("cd" * 32, SETTINGS)
    with pytest.raises(FacematchError, match="flip concat\\); this run uses mobilefacenet, .*flip none"):
        gallery.check_model(FP, {**SETTINGS, "flip": "none"})


class FakeEmbedder:
    """A FaceEmbedder stand-in: a "photo" is a text file naming a vector seed, or ``noface`` / ``twofaces``
    / ``junk``; ``faces`` faces per photo."""

    def __init__(self, d=16, fingerprint=FP):
        self.model = SimpleNamespace(fingerprint=fingerprint)
        self.settings = dict(SETTINGS)
        self.d = d
        self.embedded = 0

    def _one(self, path, all_faces=False):
        text = open(path).read().strip()
        if text == "noface":
            raise NoFaceError(f"no face found in {path}")
        if text == "twofaces" and not all_faces:
            raise MultipleFacesError(f"2 faces of similar size in {path}")
        if text == "junk":
            raise UnreadableImageError(f"{path} is not an image file")
        seeds = [1000, 2000] if text == "twofaces" else [int(text)]
        faces = [Face(np.array([0, 0, 10, 10], np.float32), np.zeros((5, 2)), 0.99, crop(s % 255)) for s in seeds]
        return PhotoFaces(str(path), None, faces, len(faces))

    def photo(self, path, select=None, all_faces=False):
        return self._one(path, all_faces)

    def photos(self, paths, select=None, all_faces=False):
        for p in paths:
            try:
                yield self._one(p, all_faces)
            except FacematchError as err:
                yield err

    def vec(self, seed):
        return unit(np.random.default_rng(seed), 1, self.d)[0]

    def views(self, crops):
        return np.stack([self.vec(int(c[0, 0, 0])) for c in crops])[:, None]

    def embed_crops(self, crops, views=None):
        if not len(crops):
            return np.zeros((0, self.d), np.float32)
        self.embedded += len(crops)
        return (self.views(crops) if views is None else views)[:, 0]

    def embed(self, photos):
        out = []
        for p in photos:
            out.append(np.stack([self.vec(int(f.crop[0, 0, 0])) for f in p.faces]))
            self.embedded += len(p.faces)
        return out


def write_people(root, people):
    for name, photos in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for fname, text in photos.items():
            (root / name / fname).write_text(text)


def test_enroll_counts_skips_and_adds(tmp_path, gallery):
    people = tmp_path / "people"
    write_people(people, {"ann": {"1.jpg": "1", "2.jpg": "2"}, "bob": {"1.jpg": "3", "bad.jpg": "junk"},
                          "cy": {"1.jpg": "noface", "2.jpg": "twofaces", "notes.txt": "ignored"}})
    (people / "loose.jpg").write_text("4")
    fe = FakeEmbedder()
    s = enroll_folder(fe, gallery, people, progress=False, failures_tsv=tmp_path / "failures.tsv")
    assert (s["people"], s["faces"], s["enrolled"], s["already_enrolled"]) == (2, 3, 3, 0)
    assert s["failed"] == {"no_face": 1, "several_faces": 1, "unreadable": 1, "no_person_folder": 1}
    assert "3 enrolled, 0 skipped as already enrolled, 4 failed (1 no face, 1 several faces" in summary_text(s)
    tsv = (tmp_path / "failures.tsv").read_text().splitlines()
    assert tsv[0] == "path\treason\tmessage" and len(tsv) == 5
    write_people(people, {"dan": {"1.jpg": "5"}})  # re-run: only the new person is embedded
    fe.embedded = 0
    s = enroll_folder(fe, Gallery.open(gallery.root), people, progress=False)
    assert (s["people"], s["enrolled"], s["already_enrolled"], s["people_added"], fe.embedded) == (3, 1, 3, 1, 1)


def test_enroll_refuses_another_model_and_empty_folders(tmp_path, gallery):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacematchError, match="no images found in"):
        enroll_folder(FakeEmbedder(), gallery, tmp_path / "empty", progress=False)
    with pytest.raises(FacematchError, match="enrolled with another model"):
        enroll_folder(FakeEmbedder(fingerprint="ff" * 32), gallery, tmp_path / "empty", progress=False)


def test_search_photo_names_or_unknown(tmp_path, gallery):
    people = tmp_path / "people"
    write_people(people, {"ann": {"1.jpg": "1"}, "bob": {"1.jpg": "3"}})
    fe = FakeEmbedder()
    enroll_folder(fe, gallery, people, progress=False)
    probe = tmp_path / "probe.jpg"
    probe.write_text("1")  # the same vector as ann's
    r = search_photo(fe, gallery, probe, top_k=2, threshold={"threshold": 0.5, "source": "--threshold"})
    assert r["photo"] == str(probe) and r["threshold"] == 0.5 and len(r["faces"]) == 1
    f = r["faces"][0]
    assert f["identity"] == "ann" and f["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert [m["name"] for m in f["matches"]] == ["ann", "bob"] and f["box"] == [0.0, 0.0, 10.0, 10.0]
    assert set(f["matches"][0]) == {"name", "similarity", "crop", "photo"}
    r = search_photo(fe, gallery, probe, top_k=2, threshold={"threshold": 1.01})
    assert r["faces"][0]["identity"] == "unknown"
    probe.write_text("twofaces")
    with pytest.raises(MultipleFacesError):
        search_photo(fe, gallery, probe, threshold={"threshold": 0.5})
    assert len(search_photo(fe, gallery, probe, threshold={"threshold": 0.5}, all_faces=True)["faces"]) == 2
    with pytest.raises(FacematchError, match="another model"):
        search_photo(FakeEmbedder(fingerprint="ee" * 32), gallery, probe, threshold={"threshold": 0.5})


def test_failures_tsv_sorted(tmp_path):
    write_failures_tsv(tmp_path / "f.tsv", [{"path": "b", "reason": "no_face", "message": "m"},
                                            {"path": "a", "reason": "unreadable", "message": "n"}])
    assert (tmp_path / "f.tsv").read_text() == "path\treason\tmessage\na\tunreadable\tn\nb\tno_face\tm\n"


# ------------------------------------------------------------------------------------------ open set

def test_threshold_at_far_by_hand():
    imp = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    t = threshold_at_far(imp, 0.1)  # 1 of 10 may pass: just above the 2nd highest
    assert 0.8 < t < 0.8 + 1e-12 and np.mean(np.array(imp) >= t) == 0.1
    t = threshold_at_far(imp, 0.05)  # none may pass
    assert 0.9 < t < 0.9 + 1e-12
    assert threshold_at_far(imp, 1.0) == float("-inf")
    t = threshold_at_far([0.5, 0.5, 0.5, 0.1], 0.25)  # ties never push it over the budget
    assert t > 0.5 and np.mean(np.array([0.5, 0.5, 0.5, 0.1]) >= t) == 0.0
    with pytest.raises(ValueError, match="no impostor"):
        threshold_at_far([], 0.1)


def test_open_set_report_by_hand():
    known = [0.95, 0.85, 0.75, 0.65, 0.55]
    correct = [True, True, False, True, True]
    imp = [0.9, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.0]
    r = open_set_report(known, correct, imp, fars=(1e-1, 0.2), threshold=0.6)
    assert r["rank_1"] == 0.8 and r["n_known"] == 5 and r["n_impostors"] == 10
    # FAR 0.1: 1 impostor may pass -> t just above 0.7: known 0.95, 0.85 correct and above -> DIR 2/5
    assert r["dir_at_far"]["1e-1"]["dir"] == pytest.approx(0.4) and r["dir_at_far"]["1e-1"]["far"] == 0.1
    # FAR 0.2: t just above 0.6: 0.95, 0.85 (0.75 is wrong, 0.65 correct) -> 3/5
    assert r["dir_at_far"]["2e-1"]["dir"] == pytest.approx(0.6) and r["dir_at_far"]["2e-1"]["far"] == 0.2
    assert r["at_threshold"] == {"threshold": 0.6, "dir": 0.6, "far": 0.3}
    assert rates_at_threshold(known, correct, imp, -1.0)["dir"] == r["rank_1"]  # no threshold: closed-set Rank-1

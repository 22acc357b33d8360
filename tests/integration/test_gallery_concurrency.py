"""Several processes writing one gallery at once (real ``facematch-gallery`` subprocesses, LFW photos): two
first enrolments into a new gallery; two enrolments and a removal into an existing one while searches loop.

The race is made to happen, not hoped for: each writer runs ``facematch-gallery`` with ``Gallery.save``
wrapped by a barrier (:data:`RACER`), so every writer has read the gallery and holds its changes before any
of them commits, and the searching reader is stopped between reading the manifest and loading the
embeddings it names until the writers have finished. The old code (save = write what this process read)
lost one writer's changes here and the reader found its embeddings file deleted."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers import REPO

# A ``facematch-gallery`` whose first commit waits (up to 2 min) until $RACE_PARTIES processes reached theirs.
RACER = r"""
import os, sys, time
from pathlib import Path
from facematch.gallery.store import Gallery
barrier, parties, real, hit = Path(os.environ["RACE_DIR"]), int(os.environ["RACE_PARTIES"]), Gallery.save, []
def save(self, *args, **kwargs):
    if not hit:
        hit.append(1)
        (barrier / f"writer-{os.getpid()}").touch()
        end = time.monotonic() + 120
        while len(list(barrier.iterdir())) < parties and time.monotonic() < end:
            time.sleep(0.02)
    return real(self, *args, **kwargs)
Gallery.save = save
from facematch.cli.gallery import main
sys.exit(main(sys.argv[1:]))
"""


def people_folder(root, lfw_root, people):
    for name, ids in people.items():
        (root / name).mkdir(parents=True)
        for i in ids:
            (root / name / f"{name}_{i:04d}.jpg").symlink_to(lfw_root / name / f"{name}_{i:04d}.jpg")
    return root


def start(barrier, parties, *argv):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RACE_DIR": str(barrier), "RACE_PARTIES": str(parties),
           "OMP_NUM_THREADS": "1"}
    env.pop("FACEMATCH_DEBUG", None)
    return subprocess.Popen([sys.executable, "-c", RACER, *map(str, argv)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert err.count("waiting for another process") <= 1, err  # said once, if it had to wait
    return out


def counts(gallery):
    from facematch.gallery.store import Gallery

    return Gallery.open(gallery).counts()


def enrol(weights, gallery, folder, barrier, parties):
    return start(barrier, parties, "enroll", folder, "--out", gallery, "--weights", weights, "--no-progress")


def synthetic_gallery(path, weights, people):
    """A gallery of ``{name: n faces}`` with random unit vectors, recorded as made by ``weights`` (the shipped
    MobileFaceNet, flip concat: 256-d), so a real enrolment adds to it without loading a model here."""
    from facematch.gallery.store import Gallery
    from facematch.utils.io import sha256_file

    g = Gallery.create(path, sha256_file(weights), {"arch": "mobilefacenet", "flip": "concat"})
    rng = np.random.default_rng(0)
    for name, n in people.items():
        for i in range(n):
            v = rng.normal(size=256).astype(np.float32)
            g.add(name, f"/nowhere/{name}/{i}.jpg", v / np.linalg.norm(v), np.zeros((112, 96, 3), np.uint8))
    g.save()
    return path


@pytest.mark.slow
def test_two_first_enrolments_into_a_new_gallery(lfw_root, mfn_weights, tmp_path):
    """Two enrolments into a folder with no gallery yet: whichever commits first creates it, both land."""
    a = people_folder(tmp_path / "a", lfw_root, {"Tony_Blair": (1, 2)})
    b = people_folder(tmp_path / "b", lfw_root, {"Donald_Rumsfeld": (1,)})
    (tmp_path / "barrier").mkdir()
    for p in [enrol(mfn_weights, tmp_path / "g", f, tmp_path / "barrier", 2) for f in (a, b)]:
        finish(p)
    assert counts(tmp_path / "g") == {"Donald_Rumsfeld": 1, "Tony_Blair": 2}


@pytest.mark.slow
def test_two_enrolments_and_a_removal_at_once_while_searches_loop(lfw_root, mfn_weights, tmp_path, monkeypatch):
    """Two enrolments (disjoint people) and a removal into one existing gallery at once: all three land.
    Every search of the loop meanwhile reads one whole version: the embeddings matrix has a row per entry,
    each entry's own vector finds that entry's name, and the names are those of a state some commit
    published (any subset of the three changes)."""
    from facematch.gallery.store import Gallery

    gallery = synthetic_gallery(tmp_path / "g", mfn_weights, {"George_W_Bush": 2, "Colin_Powell": 1})
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    folders = [people_folder(tmp_path / k, lfw_root, people) for k, people in (
        ("a", {"Tony_Blair": (1, 2)}), ("b", {"Gerhard_Schroeder": (1,)}))]
    writers = [*(enrol(mfn_weights, gallery, f, barrier, 4) for f in folders),
               start(barrier, 4, "remove", "Colin_Powell", "--gallery", gallery)]
    real_load, joined = np.load, []

    def load_after_the_writers(*args, **kwargs):
        """Once every writer waits at its commit: join them, and load only after they have finished."""
        if not joined and len(list(barrier.iterdir())) == len(writers):
            joined.append(1)
            (barrier / "reader").touch()
            while any(w.poll() is None for w in writers):
                time.sleep(0.05)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", load_after_the_writers)
    states = [{"George_W_Bush"} | ({"Colin_Powell"} if keep else set()) | set(added)
              for keep in (True, False) for n in range(3) for added in itertools.combinations(
                  ("Tony_Blair", "Gerhard_Schroeder"), n)]
    searches_after, deadline = 0, time.monotonic() + 300
    while searches_after < 3 and time.monotonic() < deadline:  # until 3 searches after the writers finished
        if not joined and all(w.poll() is not None for w in writers):
            break  # they failed before their commit
        g = Gallery.open(gallery)
        assert g.embeddings.shape[0] == len(g.entries) and set(g.names) in states, (g.names, g.embeddings.shape)
        last = len(g) - 1
        (best,) = g.search(g.embeddings[last][None], top_k=1)[0]
        assert best["name"] == g.entries[last]["name"] and best["similarity"] == pytest.approx(1.0, abs=1e-4)
        searches_after += bool(joined)
    assert joined, "the writers never reached their commit"
    for w in writers:
        finish(w)
    assert counts(gallery) == {"George_W_Bush": 2, "Gerhard_Schroeder": 1, "Tony_Blair": 2}
    assert not (gallery / "faces" / "Colin_Powell").exists()

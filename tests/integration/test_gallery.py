"""facematch-gallery on real LFW photos: enrol a small folder (with a non-image and a face-less image),
re-enrol incrementally, search an enrolled person's held-out photo and a stranger's, every face of a
two-face photo, JSON output, remove, list, and the error paths."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from facematch.cli.gallery import main
from tests.helpers import error_line, run_cli

PEOPLE = {"George_W_Bush": (7, 16), "Colin_Powell": (1, 2), "Tony_Blair": (1, 2), "Donald_Rumsfeld": (1, 2)}
LATER = {"Gerhard_Schroeder": (1, 2)}
HELD_OUT = "Tony_Blair/Tony_Blair_0010.jpg"
STRANGER = "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
T = "0.37"


def lfw(lfw_root, name, i):
    return lfw_root / name / f"{name}_{i:04d}.jpg"


def people_folder(root, lfw_root, people):
    for name, ids in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in ids:
            (root / name / f"{name}_{i:04d}.jpg").symlink_to(lfw(lfw_root, name, i))
    return root


@pytest.fixture(scope="module")
def enrolled(lfw_root, mfn_weights, tmp_path_factory):
    """A gallery of PEOPLE (2 photos each) plus a text file named .jpg and a face-less image."""
    base = tmp_path_factory.mktemp("gallery")
    people = people_folder(base / "people", lfw_root, PEOPLE)
    (people / "Colin_Powell" / "notes.jpg").write_text("not a photo\n")
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(people / "Tony_Blair" / "wall.png")
    (people / "Tony_Blair" / "readme.txt").write_text("ignored: not an image name\n")
    out = base / "g"
    code = main(["enroll", str(people), "--out", str(out), "--weights", str(mfn_weights), "--no-progress",
                 "--failures", str(base / "failures.tsv")])
    assert code == 0
    return {"base": base, "people": people, "gallery": out, "weights": str(mfn_weights)}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_enroll_counts_failures_and_stores_crops(enrolled):
    from facematch.gallery.store import Gallery

    g = Gallery.open(enrolled["gallery"])
    assert g.counts() == {name: 2 for name in sorted(PEOPLE)}
    assert all(g.crop_path(e).is_file() for e in g.entries)
    assert Image.open(g.crop_path(g.entries[0])).size == (96, 112)  # MobileFaceNet's 112x96 template
    assert g.manifest["model"]["settings"]["arch"] == "mobilefacenet" and g.index_kind == "flat"
    tsv = (enrolled["base"] / "failures.tsv").read_text().splitlines()
    reasons = sorted(line.split("\t")[1] for line in tsv[1:])
    assert reasons == ["no_face", "unreadable"], tsv


def test_reenroll_adds_only_what_is_new(enrolled, lfw_root, tmp_path, capsys, monkeypatch):
    """Re-running enroll on the folder after a person was added embeds only that person's photos."""
    from facematch.embedding.photos import FaceEmbedder

    people = people_folder(tmp_path / "people", lfw_root, {"Colin_Powell": (1,)})
    argv = ("enroll", people, "--out", tmp_path / "g", "--weights", enrolled["weights"], "--no-progress")
    assert run(capsys, *argv)[0] == 0
    embedded = []
    real = FaceEmbedder.embed_crops
    monkeypatch.setattr(FaceEmbedder, "embed_crops",
                        lambda self, crops: embedded.append(len(crops)) or real(self, crops))
    people_folder(people, lfw_root, {**LATER, "Colin_Powell": (2,)})
    code, out = run(capsys, *argv)
    assert code == 0 and "gallery: 2 people, 4 faces (1 people added)" in out.out
    assert "photos: 3 enrolled, 1 skipped as already enrolled, 0 failed" in out.out
    assert sum(embedded) == 3  # the enrolled photo did not go through the model again
    code, out = run(capsys, *argv)
    assert "0 enrolled, 4 skipped as already enrolled" in out.out and sum(embedded) == 3


def test_search_enrolled_person_and_stranger(enrolled, lfw_root, capsys):
    code, out = run(capsys, "search", lfw_root / HELD_OUT, lfw_root / STRANGER, "--gallery", enrolled["gallery"],
                    "--weights", enrolled["weights"], "--threshold", T, "--json", "--top", "3")
    assert code == 0
    blair, stranger = (json.loads(line) for line in out.out.splitlines())
    face = blair["faces"][0]
    assert face["identity"] == "Tony_Blair" and face["similarity"] >= float(T)
    assert face["matches"][0]["name"] == "Tony_Blair" and len(face["matches"]) == 3
    assert face["matches"][0]["crop"].endswith(".png") and blair["threshold"] == float(T)
    assert stranger["faces"][0]["identity"] == "unknown" and stranger["faces"][0]["similarity"] < float(T)
    code, out = run(capsys, "search", lfw_root / HELD_OUT, "--gallery", enrolled["gallery"],
                    "--weights", enrolled["weights"], "--threshold", T)
    assert out.out.startswith(f"threshold {T} (--threshold); gallery ") and ": Tony_Blair 0." in out.out


def test_all_faces(enrolled, lfw_root, tmp_path, capsys):
    """Two real faces side by side (Bush, enrolled, and Peirsol, not): refused without --all-faces (exit 4),
    both searched with it."""
    crops = [np.asarray(Image.open(lfw_root / rel).convert("RGB"))[30:220, 30:220]
             for rel in ("George_W_Bush/George_W_Bush_0020.jpg", "Aaron_Peirsol/Aaron_Peirsol_0001.jpg")]
    two = tmp_path / "two.jpg"
    Image.fromarray(np.concatenate(crops, axis=1)).save(two, quality=95)
    with pytest.raises(SystemExit) as e:
        main(["search", str(two), "--gallery", str(enrolled["gallery"]), "--weights", enrolled["weights"],
              "--threshold", T])
    assert e.value.code == 4 and "2 faces of similar size" in error_line(capsys.readouterr().err)
    code, out = run(capsys, "search", two, "--gallery", enrolled["gallery"], "--weights", enrolled["weights"],
                    "--threshold", T, "--all-faces", "--json")
    faces = json.loads(out.out)["faces"]
    assert len(faces) == 2 and sorted(f["identity"] for f in faces) == ["George_W_Bush", "unknown"]


def test_calibrated_threshold_is_the_default(enrolled, lfw_root, tmp_path, capsys, monkeypatch):
    from facematch.calibration.store import Calibration, write_sidecar
    from facematch.utils.io import sha256_file

    monkeypatch.setenv("FACEMATCH_CALIBRATION_DIR", str(tmp_path))
    cal = Calibration(sha256_file(enrolled["weights"]), {"far_1e-3": {"threshold": 0.41, "far": 0.001, "tar": 0.95}},
                      "far_1e-3", {"arch": "mobilefacenet", "flip": "concat"}, {"pairs": "pairs.txt"})
    write_sidecar(cal)
    code, out = run(capsys, "search", lfw_root / HELD_OUT, "--gallery", enrolled["gallery"], "--weights",
                    enrolled["weights"])
    assert code == 0 and out.out.startswith("threshold 0.4100 (calibrated, far_1e-3 on pairs.txt: FAR 0.0010, TAR 0.9500)")


def test_remove_and_list(enrolled, tmp_path, capsys):
    gallery = tmp_path / "g"
    shutil.copytree(enrolled["gallery"], gallery)
    code, out = run(capsys, "remove", "Colin_Powell", "--gallery", gallery)
    assert code == 0 and out.out.strip() == f"removed Colin_Powell (2 faces) from {gallery}"
    code, out = run(capsys, "list", "--gallery", gallery, "--json")
    assert json.loads(out.out)["people"] == {"Donald_Rumsfeld": 2, "George_W_Bush": 2, "Tony_Blair": 2}
    with pytest.raises(SystemExit) as e:
        main(["remove", "Colin_Powell", "--gallery", str(gallery)])
    assert e.value.code == 2 and "no identity 'Colin_Powell' in gallery" in error_line(capsys.readouterr().err)


def test_other_model_refused(enrolled, lfw_root, capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", str(lfw_root / HELD_OUT), "--gallery", str(enrolled["gallery"]), "--weights",
              enrolled["weights"], "--flip", "none", "--threshold", T])
    line = error_line(capsys.readouterr().err)
    assert e.value.code == 2 and "was enrolled with another model" in line and "flip none" in line


def test_cli_missing_gallery_is_one_error_line(lfw_root, tmp_path):
    missing = tmp_path / "nowhere"
    r = run_cli(["-m", "facematch.cli.gallery", "search", str(lfw_root / HELD_OUT), "--gallery", str(missing)])
    assert r.returncode == 2 and r.stdout == ""
    assert error_line(r.stderr) == (f"error: gallery not found: {missing}; enrol one with "
                                    f"`facematch-gallery enroll DIR --out {missing}`")

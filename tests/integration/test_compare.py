"""facematch-compare on real photos, its JSON output, and each error path with its exit code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facematch.cli.compare import main
from tests.helpers import run_cli

BUSH_A = "George_W_Bush/George_W_Bush_0007.jpg"
BUSH_B = "George_W_Bush/George_W_Bush_0016.jpg"
POWELL = "Colin_Powell/Colin_Powell_0040.jpg"
PEIRSOL = "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"  # face about the size of BUSH_A's


@pytest.fixture(scope="module")
def photos(lfw_root):
    return {k: str(lfw_root / v) for k, v in (("a", BUSH_A), ("b", BUSH_B), ("other", POWELL))}


@pytest.fixture(scope="module")
def two_faces(lfw_root, tmp_path_factory):
    """Two real faces of similar size side by side in one image (central 190 px of two LFW photos)."""
    crops = [np.asarray(Image.open(lfw_root / rel).convert("RGB"))[30:220, 30:220] for rel in (BUSH_A, PEIRSOL)]
    path = tmp_path_factory.mktemp("faces") / "two_faces.jpg"
    Image.fromarray(np.concatenate(crops, axis=1)).save(path, quality=95)
    return str(path)


def run_main(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr()


def test_same_person_and_different_people(photos, mfn_weights, capsys):
    """The shipped calibration of the shared MobileFaceNet is the default threshold (FAR 1e-3 on LFW)."""
    from facematch.calibration.store import SHIPPED_DIR
    from facematch.utils.io import sha256_file

    shipped = json.loads((SHIPPED_DIR / f"{sha256_file(mfn_weights)}.json").read_text())
    t = shipped["points"]["far_1e-3"]["threshold"]
    code, out = run_main(capsys, photos["a"], photos["b"], "--weights", str(mfn_weights), "--json")
    r = json.loads(out.out)
    assert code == 0 and r["threshold_source"] == "calibration" and r["operating_point"] == "far_1e-3"
    assert r["threshold"] == pytest.approx(t, abs=1e-6) and r["far"] <= 1e-3 and r["tar"] > 0.9
    assert r["same"] is True and r["similarity"] >= t
    code, out = run_main(capsys, photos["a"], photos["other"], "--weights", str(mfn_weights), "--json")
    r = json.loads(out.out)
    assert r["same"] is False and r["similarity"] < 0.3
    code, out = run_main(capsys, photos["a"], photos["b"], "--weights", str(mfn_weights), "--threshold", "0.99")
    assert out.out.startswith("similarity 0.") and "different people" in out.out and "< 0.99" in out.out
    assert "(--threshold)" in out.out


def test_issue_pair_same_with_calibrated_default(lfw_root, mfn_weights, capsys):
    """The pair of the issue (0.41, judged different at the old fixed 0.6) is the same man at the
    calibrated threshold; the text output names the threshold with its FAR and TAR."""
    a, b = (str(lfw_root / "Tony_Blair" / f"Tony_Blair_000{i}.jpg") for i in (1, 2))
    code, out = run_main(capsys, a, b, "--weights", str(mfn_weights))
    assert code == 0 and "same person" in out.out
    assert "calibrated, far_1e-3 on pairs.txt: FAR 0.00" in out.out and "TAR 0.9" in out.out


def test_uncalibrated_model_says_how(photos, mfn_weights, tmp_path, capsys, monkeypatch):
    """Other weights (a re-saved copy: another sha256) have no calibration: one line naming the fix."""
    import torch

    monkeypatch.setenv("FACEMATCH_CALIBRATION_DIR", str(tmp_path / "none"))
    other = tmp_path / "resaved.ckpt"
    torch.save({"net_state_dict": torch.load(mfn_weights, map_location="cpu", weights_only=True)["net_state_dict"]}, other)
    _exit_line(capsys, [photos["a"], photos["b"], "--weights", str(other)], 2,
               f"{other} has no calibrated threshold; make one with `facematch-calibrate --arch mobilefacenet --weights {other}`")


def test_several_faces_need_select(two_faces, photos, mfn_weights, capsys):
    code, out = run_main(capsys, two_faces, photos["a"], "--weights", str(mfn_weights), "--select", "largest",
                         "--json")
    assert code == 0 and json.loads(out.out)["similarity"] > -1.0
    with pytest.raises(SystemExit) as e:
        main([two_faces, photos["a"], "--weights", str(mfn_weights)])
    assert e.value.code == 4
    assert "2 faces of similar size" in capsys.readouterr().err


def test_missing_weights_exit_6(photos, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([photos["a"], photos["b"], "--weights", str(tmp_path / "nope.ckpt")])
    assert e.value.code == 6 and "weights file not found" in capsys.readouterr().err


def _single_error(r, code: int, needle: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stdout == ""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr[-2000:]


def test_cli_json_on_real_photos(photos, mfn_weights):
    r = run_cli(["-m", "facematch.cli.compare", photos["a"], photos["b"], "--weights", str(mfn_weights), "--json"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["same"] is True


def test_cli_unreadable_exit_5(photos, mfn_weights, tmp_path):
    # in a subprocess: the console-script boundary (exit code, one line, no traceback)
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo\n")
    r = run_cli(["-m", "facematch.cli.compare", photos["a"], str(fake), "--weights", str(mfn_weights)])
    _single_error(r, 5, f"{fake} is not an image file")


def _exit_line(capsys, argv, code: int, needle: str) -> None:
    """In-process: ``main(argv)`` exits with ``code`` after one "error:" line on stderr and nothing else."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    assert e.value.code == code, out.err[-2000:]
    assert "Traceback" not in out.err and out.out == ""
    errors = [ln for ln in out.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], out.err[-2000:]


def test_no_face_exit_3(photos, mfn_weights, tmp_path, capsys):
    grey = tmp_path / "grey.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(grey)
    _exit_line(capsys, [str(grey), photos["a"], "--weights", str(mfn_weights)], 3, f"no face found in {grey}")


def test_several_faces_exit_4(two_faces, photos, mfn_weights, capsys):
    _exit_line(capsys, [photos["a"], two_faces, "--weights", str(mfn_weights)], 4, "faces of similar size")

"""A probe-side model (``--probe-ckpt``, facematch.app.probe_model) in facematch-compare and gallery search on
real LFW photos: the second photo (the photo searched) is embedded by the probe model, the first (the gallery)
by the model the usual options name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from facematch.cli.compare import main as compare
from facematch.cli.gallery import main as gallery
from facematch.embedding.photos import FaceEmbedder
from facematch.models.backbones import build_backbone
from facematch.models.heads import LinearHead
from facematch.models.loading import build_arch_model, load_checkpoint_model

BUSH_A = "George_W_Bush/George_W_Bush_0007.jpg"
BUSH_B = "George_W_Bush/George_W_Bush_0016.jpg"
POWELL = "Colin_Powell/Colin_Powell_0040.jpg"


@pytest.fixture(scope="module")
def probe_ckpt(mfn_weights, tmp_path_factory):
    """A facematch-train checkpoint of the shared MobileFaceNet with a head that is not the identity (a
    stand-in for an adapted student: its embeddings differ from the backbone's)."""
    torch.manual_seed(0)
    backbone = build_backbone("mobilefacenet", weights=str(mfn_weights))
    head = LinearHead(128, dim=128, init="identity")
    with torch.no_grad():
        head.proj.weight.add_(0.3 * torch.randn_like(head.proj.weight))
    state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    path = tmp_path_factory.mktemp("probe") / "student.ckpt"
    torch.save({"epoch": 1, "state_dict": state,
                "facematch": {"arch": {"name": "mobilefacenet"}, "head": {"dim": 128, "init": "identity"}}}, path)
    return path


@pytest.fixture(scope="module")
def small_face(lfw_root, tmp_path_factory):
    """BUSH_B as a low-resolution camera still: the photo shrunk to 64 px and scaled back (bilinear)."""
    im = Image.open(lfw_root / BUSH_B).convert("RGB")
    path = tmp_path_factory.mktemp("small") / "bush_small.png"
    im.resize((64, 64), Image.BILINEAR).resize(im.size, Image.BILINEAR).save(path)
    return str(path)


def _json(capsys, argv):
    assert compare(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_embeds_the_second_photo_with_the_probe_model(lfw_root, mfn_weights, probe_ckpt, small_face, capsys):
    gallery_photo = str(lfw_root / BUSH_A)
    r = _json(capsys, [gallery_photo, small_face, "--probe-ckpt", str(probe_ckpt), "--threshold", "0.3", "--json"])
    plain = _json(capsys, [gallery_photo, small_face, "--threshold", "0.3", "--json"])
    # the same similarity computed directly: the gallery model on the first photo, the probe model on the second
    teacher = FaceEmbedder(build_arch_model("mobilefacenet", str(mfn_weights)), precision="fp32")
    student = FaceEmbedder(load_checkpoint_model(probe_ckpt), precision="fp32")
    a = teacher.embed([teacher.photo(gallery_photo)])[0][0]
    b = student.embed([student.photo(small_face)])[0][0]
    assert r["similarity"] == pytest.approx(float(a @ b), abs=1e-5)
    assert r["similarity"] != pytest.approx(plain["similarity"], abs=1e-3)  # the probe model was used
    swapped = _json(capsys, [small_face, gallery_photo, "--probe-ckpt", str(probe_ckpt), "--threshold", "0.3", "--json"])
    assert swapped["similarity"] != pytest.approx(r["similarity"], abs=1e-3)  # which side is the probe matters
    assert r["same"] is (r["similarity"] >= 0.3)


def test_probe_model_needs_a_threshold_and_a_file(lfw_root, probe_ckpt, tmp_path, capsys):
    photos = [str(lfw_root / BUSH_A), str(lfw_root / POWELL)]
    with pytest.raises(SystemExit) as e:
        compare([*photos, "--probe-ckpt", str(probe_ckpt)])
    assert e.value.code != 0
    err = capsys.readouterr().err
    assert err.startswith("error: --probe-ckpt embeds the two sides with two models") and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        compare([*photos, "--probe-ckpt", str(tmp_path / "none.ckpt"), "--threshold", "0.3"])
    assert e.value.code == 6 and "probe checkpoint not found" in capsys.readouterr().err


def test_gallery_search_with_a_probe_model(lfw_root, mfn_weights, probe_ckpt, small_face, tmp_path, capsys):
    people = tmp_path / "people"
    for rel in (BUSH_A, POWELL):
        (people / rel.split("/")[0]).mkdir(parents=True)
        shutil.copyfile(lfw_root / rel, people / rel)  # the same bytes as the photo embedded below
    out = tmp_path / "gallery"
    assert gallery(["enroll", str(people), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert gallery(["search", small_face, "--gallery", str(out), "--probe-ckpt", str(probe_ckpt),
                    "--threshold", "0.2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    sims = {m["name"]: m["similarity"] for m in r["faces"][0]["matches"]}
    teacher = FaceEmbedder(build_arch_model("mobilefacenet", str(mfn_weights)), precision="fp32")
    student = FaceEmbedder(load_checkpoint_model(probe_ckpt), precision="fp32")
    probe = student.embed([student.photo(small_face)])[0][0]
    for name, rel in (("George_W_Bush", BUSH_A), ("Colin_Powell", POWELL)):
        enrolled = teacher.embed([teacher.photo(str(lfw_root / rel))])[0][0]
        assert sims[name] == pytest.approx(float(enrolled @ probe), abs=1e-4)


def test_web_page_compares_with_the_probe_model(lfw_root, mfn_weights, probe_ckpt, small_face, capsys):
    import re

    from fastapi.testclient import TestClient

    from facematch.app.server import build_parser, create_app, load_state

    gallery_photo = str(lfw_root / BUSH_A)
    cli = _json(capsys, [gallery_photo, small_face, "--probe-ckpt", str(probe_ckpt), "--threshold", "0.3", "--json"])
    state = load_state(build_parser().parse_args(["--weights", str(mfn_weights), "--threshold", "0.3",
                                                  "--probe-ckpt", str(probe_ckpt)]))
    assert "probe side" in state.model_text and "student.ckpt" in state.model_text
    with TestClient(create_app(state), raise_server_exceptions=False) as client:
        files = {"photo1": ("a.jpg", open(gallery_photo, "rb").read(), "image/jpeg"),
                 "photo2": ("b.png", open(small_face, "rb").read(), "image/png")}
        r = client.post("/compare", files=files)
    assert r.status_code == 200
    shown = float(re.search(r'id="similarity"[^>]*>([^<]*)<', r.text).group(1))
    assert shown == pytest.approx(cli["similarity"], abs=1e-3)

"""Hostile files through the commands themselves (issue 30): a packed folder whose part declares a pickle
field (``facematch-data verify``), a checkpoint that pickles a callable (``facematch-train ckpt_path=``
resuming, ``facematch-eval ckpt_path=``) and an ONNX model whose external data is outside its folder
(``facematch-compare --onnx``): each command prints one ``error:`` line naming the file, exits 2, prints no
traceback, and the marker file the hostile one would create never appears."""

from __future__ import annotations

import builtins

import numpy as np
import torch
from PIL import Image

from facematch.data.pack import pack
from tests.helpers import error_line, run_cli
from tests.unit.test_hostile_files import onnx_with_external
from tests.unit.test_hostile_packs import poison


class Touch:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def test_verify_refuses_a_pack_declaring_a_pickle_field(tmp_path):
    src, out, marker = tmp_path / "src", tmp_path / "packed", tmp_path / "MARKER"
    for person in ("Ann_A", "Bob_B"):
        (src / person).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (16, 16), (i * 90, 0, 0)).save(src / person / f"{person}_{i}.png")
    pack(src, out, part_size=3, progress=False)
    part = poison(out, marker)
    r = run_cli(["-m", "facematch.cli.data", "verify", str(out)], timeout=120)
    line = error_line(r.stderr)
    assert r.returncode == 2 and str(part / "index.json") in line and '"pickle"' in line and not marker.exists()


def test_train_resume_and_eval_refuse_a_checkpoint_that_pickles_a_callable(tmp_path):
    marker, ckpt = tmp_path / "MARKER", tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "epoch": Touch(marker)}, ckpt)
    for module, what in (("facematch.train", "resume from"), ("facematch.eval.job", "pass ckpt_path=PATH")):
        r = run_cli(["-m", module, f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/{module}"], timeout=300)
        line = error_line(r.stderr)
        assert r.returncode == 6 and f"cannot load checkpoint {ckpt}: it pickles more than tensors" in line and what in line
    assert not marker.exists()


def test_compare_refuses_an_onnx_model_reading_outside_its_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    np.zeros(4, np.float32).tofile(tmp_path / "private.bin")
    model = onnx_with_external(folder, "../private.bin")
    photo = tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(photo)
    r = run_cli(["-m", "facematch.cli.compare", str(photo), str(photo), "--onnx", str(model), "--input-size", "112",
                 "--input-mean", "127.5", "--input-std", "127.5"], timeout=120)
    line = error_line(r.stderr)
    assert r.returncode == 6 and str(model) in line and "not a file inside the model's folder" in line

"""Files a user may have from elsewhere (issue 30), one hostile file per kind: each is refused with one
line naming it, and no code from it runs (a marker file it would create never appears). Where a control
shows the file does what it claims (torch without ``weights_only``, PIL without the format allow list),
the refusal is facematch's checks, not an accident. Packed folders: tests/unit/test_hostile_packs.py."""

from __future__ import annotations

import builtins
import json
import struct
import zipfile
import zlib

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from facematch.calibration.store import SHIPPED_DIR, read_calibration
from facematch.data.pair_files import read_pair_list, read_pairs, read_triplet_list
from facematch.errors import FacematchError, WeightsError, report_and_exit
from facematch.faces import images
from facematch.faces.images import load_image
from facematch.gallery.store import MANIFEST, Gallery
from facematch.models.backbones import build_backbone
from facematch.models.loading import load_checkpoint_model
from facematch.models.onnx_file import read_onnx
from facematch.models.onnx_runtime import OnnxModule
from facematch.models.weights import check_checkpoint


class Touch:
    """Unpickled, it creates ``marker``: code from the file runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip(), msg
    return msg


def test_a_checkpoint_that_pickles_a_callable_is_refused_everywhere(tmp_path):
    marker, ckpt = tmp_path / "MARKER", tmp_path / "evil.ckpt"
    state = build_backbone("mobilefacenet").state_dict()
    torch.save({"state_dict": state, "facematch": {"backbone": "mobilefacenet"}, "epoch": Touch(marker)}, ckpt)
    for load in (lambda: load_checkpoint_model(ckpt),                     # facematch-eval ckpt_path=, --ckpt
                 lambda: build_backbone("mobilefacenet", weights=str(ckpt)),  # arch.weights=, --weights
                 lambda: check_checkpoint(ckpt, "resume")):                # facematch-train ckpt_path= (resume)
        with pytest.raises(WeightsError) as err:
            load()
        msg = one_line(err)
        assert str(ckpt) in msg and "more than tensors and plain data" in msg and "GLOBAL io.open" in msg
        assert "weights_only=False" not in msg
    assert not marker.exists()
    torch.load(ckpt, weights_only=False)  # the control: without weights_only the file runs its code
    assert marker.exists()


def test_a_checkpoint_zip_with_compressed_entries_is_refused(tmp_path):
    good, bomb = tmp_path / "good.ckpt", tmp_path / "bomb.ckpt"
    torch.save({"w": torch.zeros(4)}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    check_checkpoint(good, "resume")
    with pytest.raises(WeightsError, match="compressed entries, which torch.save never writes"):
        check_checkpoint(bomb, "resume")


def onnx_with_external(folder, location: str):
    """A one-Add ONNX model in ``folder`` whose weight's data is in external file ``location``."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["input", "w"], ["embedding"])], "g", [x], [y], [w])
    path = folder / "model.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_onnx_external_data_must_stay_inside_the_models_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    np.arange(4, dtype=np.float32).tofile(folder / "weights.bin")
    np.full(4, 7, np.float32).tofile(tmp_path / "private.bin")
    (folder / "link.bin").symlink_to(tmp_path / "private.bin")
    data, _, _ = read_onnx(onnx_with_external(folder, "weights.bin"), bare_ok=True)  # inside: read into the model
    assert OnnxModule(data)(torch.zeros(1, 4)).tolist() == [[0.0, 1.0, 2.0, 3.0]]
    for location in ("../private.bin", str(tmp_path / "private.bin"), "link.bin", "missing.bin"):
        path = onnx_with_external(folder, location)
        with pytest.raises(WeightsError) as err:
            read_onnx(path, bare_ok=True)
        assert str(path) in one_line(err) and "not a file inside the model's folder" in str(err.value)


def test_onnx_model_over_the_size_bound_is_refused(tmp_path, monkeypatch):
    import facematch.models.onnx_file as rt

    path = onnx_with_external(tmp_path, "weights.bin")
    monkeypatch.setattr(rt, "MAX_ONNX_BYTES", 64)
    with pytest.raises(WeightsError, match=r"over the 64 bytes limit"):
        read_onnx(path, bare_ok=True)


def test_onnx_metadata_of_the_wrong_type_is_one_line(tmp_path):
    from facematch.models.onnx_export import KEYS, PREFIX

    meta = {"format": "facematch-onnx/1", "arch": "mobilefacenet", "input_size": [112, 96], "input_layout": "NCHW",
            "mean": [0.5] * 3, "std": [0.5] * 3, "template": "sphereface_112x96", "embedding_dim": "128; rm -rf",
            "fingerprint": "ab", "description": None, "calibration": None, "calibration_status": "", "opset": 17,
            "exporter": "x"}
    assert set(meta) == set(KEYS)
    path = onnx_with_external(tmp_path, "weights.bin")
    np.zeros(4, np.float32).tofile(tmp_path / "weights.bin")
    proto = onnx.load(path, load_external_data=False)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = PREFIX + key, json.dumps(value)
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(WeightsError, match="metadata embedding_dim is not of the type facematch-export writes") as err:
        read_onnx(path)
    assert str(path) in one_line(err)


@pytest.mark.parametrize("change,why", [
    (lambda d: d.update(extra={"_target_": "os.system"}), "'extra' is unknown"),
    (lambda d: d["points"]["far_1e-3"].update(threshold="0.4"), "no numeric threshold"),
    (lambda d: d["points"]["far_1e-3"].update(far="lots"), "not a number"),
    (lambda d: d["points"]["far_1e-3"].update(rule="exec"), "unknown rule"),
    (lambda d: d["settings"].update(arch=["nested"]), "plain values"),
    (lambda d: d.update(provenance={"command": {"deep": {"er": 1}}}), "plain values"),
    (lambda d: d.update(points={}), "0 operating points"),
])
def test_a_calibration_file_holds_only_what_calibrate_writes(tmp_path, change, why):
    doc = json.loads(next(SHIPPED_DIR.glob("*.json")).read_text())
    read_calibration(next(SHIPPED_DIR.glob("*.json")))
    change(doc)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FacematchError, match=why) as err:
        read_calibration(path)
    assert str(path) in one_line(err)
    path.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(FacematchError, match="not valid JSON"):
        read_calibration(path)


def test_a_huge_calibration_file_is_not_read(tmp_path, monkeypatch):
    import facematch.calibration.store as store

    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"format": store.FORMAT, "pad": "x" * 4096}))
    monkeypatch.setattr(store, "MAX_BYTES", 1024)
    with pytest.raises(FacematchError, match=r"is 4.\d+ KiB, over the 1 KiB limit"):
        read_calibration(path)


@pytest.mark.parametrize("reader,text,line", [
    (read_pair_list, "a/a_1.jpg b/b_1.jpg 1\n/etc/passwd b/b_1.jpg 0\n", 2),
    (read_pair_list, "a/a_1.jpg ../../secret.jpg 0\n", 1),
    (read_triplet_list, "a/1.jpg a/2.jpg b/1.jpg\na/1.jpg a/./2.jpg b/1.jpg\n", 2),
    (read_pairs, "1 1\nAnn 1 2\n../Bob 1 Ann 2\n", 3),
])
def test_pair_lists_name_images_only_inside_the_dataset_root(tmp_path, reader, text, line):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(FacematchError, match=rf"pairs.txt:{line}: expected .* relative to the dataset root") as err:
        reader(path)
    one_line(err)


def test_pair_lists_over_their_bounds(tmp_path, monkeypatch):
    import facematch.data.pair_files as pf

    path = tmp_path / "pairs.txt"
    path.write_text("a/1.jpg b/1.jpg 1\n" + "a/1.jpg " + "x" * 5000 + " 0\n")
    with pytest.raises(FacematchError, match=r"pairs.txt:2: a line of 5,010 characters"):
        read_pair_list(path)
    monkeypatch.setattr(pf, "MAX_LINES", 1)
    with pytest.raises(FacematchError, match="over the 1-line limit"):
        read_pair_list(path)
    monkeypatch.setattr(pf, "MAX_BYTES", 100)
    with pytest.raises(FacematchError, match=r"over the 100 bytes limit"):
        read_pair_list(path)


@pytest.mark.parametrize("change,why", [
    (lambda m: m["entries"][0].update(crop="../../secret.png"), "is not faces/<name>/<file>.png"),
    (lambda m: m["entries"][0].update(crop="/etc/passwd"), "is not faces/<name>/<file>.png"),
    (lambda m: m.update(embeddings="../elsewhere.npy"), "is not embeddings.<n>.npy"),
    (lambda m: m["entries"][0].update(name="../x"), "not a usable folder name"),
    (lambda m: m["entries"][0].update(extra=1), "not {name, photo, stamp, box, crop}"),
    (lambda m: m.update(hook="x"), "unknown keys"),
])
def test_a_gallery_manifest_names_only_its_own_files(tmp_path, change, why):
    g = Gallery.create(tmp_path / "g", "ab" * 32, {"arch": "mobilefacenet", "flip": "concat"})
    g.add("ann", "/p/a.jpg", np.eye(1, 16, dtype=np.float32)[0], np.zeros((8, 8, 3), np.uint8))
    g.save()
    manifest = json.loads((g.root / MANIFEST).read_text())
    change(manifest)
    (g.root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(FacematchError, match=why) as err:
        Gallery.open(g.root)
    assert str(g.root) in one_line(err)


def test_gallery_embeddings_must_be_a_float32_matrix(tmp_path):
    g = Gallery.create(tmp_path / "g", "ab" * 32, {"arch": "mobilefacenet", "flip": "concat"})
    g.add("ann", "/p/a.jpg", np.eye(1, 16, dtype=np.float32)[0], np.zeros((8, 8, 3), np.uint8))
    g.save()
    name = json.loads((g.root / MANIFEST).read_text())["embeddings"]
    np.save(g.root / name, np.zeros((1, 16), np.complex128))
    with pytest.raises(FacematchError, match="complex128 array of 2 dimensions, not a float32 matrix"):
        Gallery.open(g.root)


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims ``width`` x ``height`` pixels (a decompression bomb's header, nothing behind it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_images_other_formats_bombs_and_huge_files_are_one_line(tmp_path, monkeypatch):
    pcx = tmp_path / "photo.jpg"  # a PCX file named .jpg: PIL reads it, facematch does not
    Image.new("RGB", (8, 8)).save(pcx, format="PCX")
    assert Image.open(pcx).format == "PCX"  # the control
    with pytest.raises(FacematchError, match="is not an image file facematch reads") as err:
        load_image(pcx)
    assert str(pcx) in one_line(err)
    bomb = tmp_path / "bomb.png"  # PNGs claiming 72 and 400 million pixels: facematch's bound, then PIL's
    for (w, h), why in (((9000, 8000), "over the 64,000,000-pixel limit"), ((20000, 20000), "too large to decode")):
        bomb.write_bytes(png_header(w, h))
        with pytest.raises(FacematchError, match=why) as err:
            load_image(bomb)
        assert str(bomb) in one_line(err)
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    good.with_name("cut.png").write_bytes(good.read_bytes()[:6000])
    with pytest.raises(FacematchError, match="corrupt or truncated"):
        load_image(good.with_name("cut.png"))
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 16)
    with pytest.raises(FacematchError, match=r"over the 16-byte limit"):
        load_image(good)


def test_the_error_line_quotes_a_files_text_on_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        report_and_exit(FacematchError("bad name 'x\nerror: forged\x1b[2J'"))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "\x1b" not in err
    assert err == "error: bad name 'x\\nerror: forged\\x1b[2J'\n"

"""The one folder scan (faces.images.list_images): what counts as an image, and that the identity index and
``prepare`` both see exactly those files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facematch.data.identities import IdentityIndex
from facematch.errors import DataNotFoundError
from facematch.faces.crop_cache import crop_path
from facematch.faces.images import IMAGE_SUFFIXES, is_image_name, list_images
from facematch.faces.prepare import prepare

FACES = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0013.jpg"]


@pytest.fixture
def folder(lfw_root, tmp_path) -> Path:
    """Two people whose photos use suffixes the old identity scan missed, plus files no scan may take."""
    root = tmp_path / "photos"
    files = {
        "Aaron_Eckhart/a.jpg": FACES[0],
        "Aaron_Eckhart/b.JPEG": FACES[0],  # upper-case suffix
        "Abdullah_Gul/c.tif": FACES[1],  # TIFF name (JPEG bytes: decoding sniffs the content)
        "Abdullah_Gul/d.gif": FACES[1],
    }
    for rel, src in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw_root / src, root / rel)
    (root / "Abdullah_Gul" / "notes.txt").write_text("not an image\n")
    (root / "Abdullah_Gul" / ".hidden.jpg").write_bytes((lfw_root / FACES[1]).read_bytes())
    (root / ".thumbs" / "x").mkdir(parents=True)
    (root / ".thumbs" / "x" / "t.jpg").write_bytes((lfw_root / FACES[1]).read_bytes())
    return root


def test_list_images_suffixes_hidden_and_order(folder):
    assert list_images(folder) == ["Aaron_Eckhart/a.jpg", "Aaron_Eckhart/b.JPEG", "Abdullah_Gul/c.tif",
                                   "Abdullah_Gul/d.gif"]
    assert is_image_name("X.PNG") and not is_image_name(".x.png") and not is_image_name("x.png.tmp")
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)
    with pytest.raises(DataNotFoundError, match="dataset folder not found"):
        list_images(folder / "nowhere")


def test_identity_index_and_prepare_scan_the_same_files(folder):
    scanned = list_images(folder)
    index = IdentityIndex.from_folder(folder)
    paths, _ = index.paths_and_labels()
    assert sorted(paths) == scanned and index.identities == ["Aaron_Eckhart", "Abdullah_Gul"]

    out = folder / "aligned"  # a cache inside the dataset folder: its crops are not images of the dataset
    m = prepare(folder, out, "arcface_112x112", workers=1, progress=False)
    assert m["counts"]["requested"] == len(scanned) and m["counts"]["failed"] == 0
    assert all(crop_path(out, rel).is_file() for rel in scanned)
    # the index ignores files directly under the root and deeper than <identity>/<file> (the crops)
    assert sorted(IdentityIndex.from_folder(folder).paths_and_labels()[0]) == scanned
    assert len(list_images(folder)) == 2 * len(scanned)  # the crops (PNG) are images too, under aligned/

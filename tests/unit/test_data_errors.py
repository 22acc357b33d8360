"""Malformed pairs files and pair lists, and a missing dataset root: one-line user errors, no data needed."""

from __future__ import annotations

import pytest

from facematch.data.pair_files import read_lfw_pairs, read_pair_list, read_pairs
from facematch.errors import DataNotFoundError, MalformedFileError
from tests.helpers import datamodule as _dm


@pytest.mark.parametrize("content,match", [
    ("10\t300\nAbel_Pacheco\t1\t4\n", "header promises"),
    ("1\t1\nAbel_Pacheco\t1\tX\nA\t1\tB\t2\n", r":2: expected a matched pair"),
    ("1\t1\nAbel_Pacheco\t1\t4\nA\t1\tB\n", r":3: expected a mismatched pair"),
    ("", "is empty"),
])
def test_malformed_pairs_file(tmp_path, content, match):
    f = tmp_path / "pairs.txt"
    f.write_text(content)
    with pytest.raises(MalformedFileError, match=match):
        read_lfw_pairs(f)


def test_malformed_pair_list(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("a/a_0001.jpg b/b_0001.jpg 1\na/a_0001.jpg b/b_0001.jpg maybe\n")
    with pytest.raises(MalformedFileError, match=r"list.txt:2: expected 'pathA pathB label'"):
        read_pair_list(f)
    with pytest.raises(DataNotFoundError, match="not found"):
        read_pairs(tmp_path / "missing.txt")


def test_missing_root_names_env_var(tmp_path):
    with pytest.raises(DataNotFoundError, match="FACEMATCH_DATA_DIR"):
        _dm(tmp_path / "nowhere").setup("fit")


def test_every_scanned_image_format_passes_the_index_check_and_other_files_do_not(tmp_path):
    from PIL import Image

    from facematch.data.identities import check_image
    from facematch.faces.images import IMAGE_SUFFIXES

    img = Image.new("RGB", (8, 8), (200, 30, 60))
    for suffix in IMAGE_SUFFIXES:
        path = tmp_path / f"face{suffix}"
        (img.convert("L") if suffix == ".pgm" else img).save(path)
        assert check_image(path) is None, suffix
    (tmp_path / "page.jpg").write_text("<html>404 not found</html>")
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert [check_image(tmp_path / n) for n in ("page.jpg", "empty.jpg", "gone.jpg")] == ["unreadable", "empty", "missing"]

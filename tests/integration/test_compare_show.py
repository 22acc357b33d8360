"""facematch-compare --show PNG: the side-by-side picture (facematch.embedding.figures), written atomically."""

from __future__ import annotations

import numpy as np
from PIL import Image

from facematch.cli.compare import main
from facematch.embedding.figures import CROP_SIDE, DIFFERENT_COLOUR, PAD, PHOTO_HEIGHT, SAME_COLOUR


def test_show_saves_the_side_by_side_picture(lfw_root, mfn_weights, tmp_path, capsys):
    """The pair's picture: both photos (250 px LFW, drawn 320 px high), the crops, the verdict in its colour;
    nothing but the PNG is left in the folder (the other colours and the layout: tests/unit/test_figures.py)."""
    a, b = (str(lfw_root / "George_W_Bush" / f"George_W_Bush_00{i}.jpg") for i in ("07", "16"))
    out = tmp_path / "figs" / "pair.png"
    assert main([a, b, "--weights", str(mfn_weights), "--threshold", "0.37", "--show", str(out)]) == 0
    assert "same person" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width == 3 * PAD + 2 * PHOTO_HEIGHT
        assert im.height > PHOTO_HEIGHT + CROP_SIDE
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    assert (pixels == SAME_COLOUR).all(axis=1).any() and not (pixels == DIFFERENT_COLOUR).all(axis=1).any()
    assert [p.name for p in out.parent.iterdir()] == ["pair.png"]

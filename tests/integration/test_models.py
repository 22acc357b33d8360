"""MobileFaceNet with the CASIA-WebFace weights: they load strictly, and on lfw-aligned-112 the same person
is more similar than different people."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from facematch.models.backbones import build_backbone


def test_mobilefacenet_weights_load_strictly(mfn_weights):
    b = build_backbone("mobilefacenet", weights=str(mfn_weights))
    ckpt = torch.load(mfn_weights, map_location="cpu", weights_only=True)["net_state_dict"]
    own = b.net.state_dict()
    assert set(own) == set(ckpt) and len(own) == 333
    assert all(torch.equal(own[k], ckpt[k]) for k in own)


def _embed(backbone, arrays):
    from facematch.embedding.embedder import normalize_batch

    with torch.no_grad():
        return F.normalize(backbone(normalize_batch(np.stack(arrays), backbone.spec)), dim=1)


def test_mobilefacenet_same_person_more_similar(mfn_weights, data_dir):
    from PIL import Image

    root = data_dir / "lfw-aligned-112"
    def crop(rel):  # the model takes the 96-wide centre of the 112x112 arcface crop
        return np.asarray(Image.open(root / rel).convert("RGB"))[:, 8:104]

    b = build_backbone("mobilefacenet", weights=str(mfn_weights)).eval()
    e = _embed(b, [crop("George_W_Bush/George_W_Bush_0007.jpg"), crop("George_W_Bush/George_W_Bush_0016.jpg"),
                   crop("Colin_Powell/Colin_Powell_0040.jpg"), crop("Colin_Powell/Colin_Powell_0049.jpg")])
    sim = e @ e.T
    assert sim[0, 1] > 0.5 and sim[2, 3] > 0.5
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[2, 3] > sim[1, 3] + 0.3
    random_b = build_backbone("mobilefacenet").eval()  # untrained: no such separation expected from weights
    assert not torch.allclose(_embed(random_b, [crop("George_W_Bush/George_W_Bush_0007.jpg")]), e[:1])

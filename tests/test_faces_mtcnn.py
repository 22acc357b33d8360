"""Our MTCNN stage runner: batched box resampling equals area interpolation bit for bit, and a batch of real
LFW photos gets the boxes and landmarks facenet-pytorch's own ``detect_face`` reports."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from facenet_pytorch.models.utils.detect_face import detect_face, imresample
from PIL import Image

from facematch.faces.detect import DetectorSettings, FaceDetector
from facematch.faces.mtcnn import area_resize_boxes

LFW = Path(os.environ["FACEMATCH_DATA_DIR"]) / "lfw" / "lfw-deepfunneled"


@pytest.mark.parametrize("size", [24, 48])
def test_area_resize_boxes_equals_interpolate_area_per_box(size):
    gen = torch.Generator().manual_seed(size)
    imgs = torch.randint(0, 256, (3, 3, 97, 131), generator=gen).float()
    k = 200
    inds = torch.randint(0, 3, (k,), generator=gen)
    y0, x0 = torch.randint(0, 96, (k,), generator=gen), torch.randint(0, 130, (k,), generator=gen)
    y1 = torch.minimum(y0 + torch.randint(1, 90, (k,), generator=gen), torch.tensor(97))
    x1 = torch.minimum(x0 + torch.randint(1, 90, (k,), generator=gen), torch.tensor(131))
    ours = area_resize_boxes(imgs, inds, y0.numpy(), y1.numpy(), x0.numpy(), x1.numpy(), size)
    ref = torch.cat([imresample(imgs[inds[i], :, y0[i]:y1[i], x0[i]:x1[i]].unsqueeze(0), (size, size))
                     for i in range(k)])
    assert ours.shape == (k, 3, size, size)
    assert torch.equal(ours, ref)


def test_batched_stages_report_what_facenet_detect_face_does():
    paths = sorted(LFW.glob("*/*.jpg"))[::500][:12]
    assert len(paths) == 12, f"LFW images missing under {LFW} (set FACEMATCH_DATA_DIR)"
    images = [Image.open(p).convert("RGB") for p in paths]
    det = FaceDetector(DetectorSettings(landmark_offset=0.0))
    ours = det.detect(images)
    m = det.mtcnn
    with torch.no_grad():
        boxes, points = detect_face(images, m.min_face_size, m.pnet, m.rnet, m.onet, m.thresholds, m.factor, "cpu")
    for o, b, p in zip(ours, boxes, points):
        assert len(o.boxes) == len(b) >= 1
        np.testing.assert_allclose(o.boxes, b[:, :4], atol=1e-3)
        np.testing.assert_allclose(o.probs, b[:, 4], atol=1e-5)
        np.testing.assert_allclose(o.landmarks, p, atol=1e-3)

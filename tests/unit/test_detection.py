"""Detection without photos: our strided max pool and MTCNN's batched box resampling equal torch's and
facenet-pytorch's bit for bit, face selection on synthetic detections, bad detector settings. On real LFW
photos: tests/integration/test_detection.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_pytorch.models.utils.detect_face import imresample

from facematch.errors import FacematchError
from facematch.faces.detect import Detection, DetectorSettings, select_face
from facematch.faces.mtcnn import area_resize_boxes


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2)])
@pytest.mark.parametrize("ceil_mode", [True, False])
def test_strided_max_pool_equals_max_pool2d(kernel, stride, ceil_mode):
    import torch
    import torch.nn.functional as F

    from facematch.faces.detect import strided_max_pool

    pool = strided_max_pool(kernel, stride, ceil_mode)
    gen = torch.Generator().manual_seed(0)
    for h, w in [(3, 3), (4, 5), (11, 12), (23, 24), (48, 47), (149, 149)]:
        x = torch.randn(2, 3, h, w, generator=gen)
        assert torch.equal(pool(x).contiguous(), F.max_pool2d(x, kernel, stride, ceil_mode=ceil_mode)), (h, w)


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


def test_selection_rules_on_synthetic_detections():
    det = Detection(
        # a face, a small central face, a tiny one, and a big face cut by the left border (40 px visible)
        boxes=np.array([[0, 0, 100, 100], [180, 130, 220, 170], [300, 0, 340, 40], [-200, 50, 40, 290]], np.float32),
        landmarks=np.zeros((4, 5, 2), np.float32),
        probs=np.array([0.95, 0.99, 0.999, 0.999], np.float32),
        image_size=(400, 300),
    )
    assert select_face(det, "largest") == 0  # by visible area: 100x100 beats 40x240
    assert select_face(det, "nearest_center") == 1
    assert select_face(Detection(image_size=(10, 10)), "largest") is None
    with pytest.raises(FacematchError, match="selection rule"):
        select_face(det, "biggest")


@pytest.mark.parametrize("bad", ["abc", 5.0, None])
def test_bad_landmark_offset_is_one_clear_error(bad):
    with pytest.raises(FacematchError, match="landmark_offset must be a number of pixels"):
        DetectorSettings(landmark_offset=bad)


def test_bad_detector_settings_fail_when_the_source_is_built(tmp_path):
    from facematch.data.source import FaceSource

    with pytest.raises(FacematchError, match="landmark_offset"):
        FaceSource(tmp_path, "arcface_112x112", mode="align", landmark_offset="abc")
    with pytest.raises(FacematchError, match="unknown alignment option"):
        FaceSource(tmp_path, "arcface_112x112", mode="align", landmark_ofset=-0.5)

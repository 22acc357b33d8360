"""MTCNN detection on real LFW photos: ordered landmarks, batched equals one by one, the boxes and landmarks
facenet-pytorch's own MTCNN and ``detect_face`` report, face selection on a two-face image, the landmark
offset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_pytorch.models.utils.detect_face import detect_face
from PIL import Image

from facematch.faces.align import FaceAligner
from facematch.faces.detect import LANDMARK_OFFSET, DetectorSettings, FaceDetector, get_detector, select_face
from tests.helpers import DATA

pytestmark = pytest.mark.usefixtures("lfw_root")  # every test reads LFW photos (face_a, face_b: conftest.py)

LFW = DATA / "lfw" / "lfw-deepfunneled"


def test_detector_finds_one_face_with_ordered_landmarks(face_a):
    det = get_detector(DetectorSettings()).detect_one(face_a)
    assert len(det) >= 1 and det.boxes.shape[1:] == (4,) and det.landmarks.shape[1:] == (5, 2)
    k = select_face(det, "largest")
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = det.landmarks[k]
    assert lex < nx < rex and lmx < rmx  # left before right
    assert max(ley, rey) < ny < min(lmy, rmy)  # eyes above nose above mouth
    assert det.probs[k] > 0.9
    assert get_detector(DetectorSettings()) is get_detector(DetectorSettings())  # one model per process


def test_batched_detection_equals_one_by_one(face_a, face_b):
    detector = get_detector(DetectorSettings())
    batch = detector.detect([face_a, face_b, np.asarray(face_a)])
    for img, got in zip([face_a, face_b, face_a], batch):
        one = detector.detect_one(img)
        assert len(one) == len(got)
        np.testing.assert_allclose(got.boxes, one.boxes, atol=1e-2)
        np.testing.assert_allclose(got.landmarks, one.landmarks, atol=1e-2)


def test_detector_matches_facenet_pytorch_mtcnn(face_a, face_b):
    """The swapped pools change no value: our detector reports what facenet-pytorch's own MTCNN does."""
    from facenet_pytorch import MTCNN

    ref = MTCNN(keep_all=True)
    for img in (face_a, face_b):
        boxes, _, points = ref.detect(img, landmarks=True)
        ours = get_detector(DetectorSettings()).detect_one(img)
        assert len(ours) == len(boxes) >= 1
        np.testing.assert_allclose(ours.boxes, np.stack(list(boxes)).astype(np.float32), atol=1e-4)
        np.testing.assert_allclose(ours.landmarks - LANDMARK_OFFSET, np.stack(list(points)).astype(np.float32),
                                   atol=1e-4)


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


def test_selection_rules_on_a_real_two_face_image(face_a, face_b):
    canvas = Image.new("RGB", (700, 300), (128, 128, 128))
    canvas.paste(face_a, (0, 25))  # large face on the left
    canvas.paste(face_b.resize((125, 125)), (350 - 62, 150 - 62))  # small face in the centre
    largest = FaceAligner("arcface_112x112", select="largest").align(canvas)
    central = FaceAligner("arcface_112x112", select="nearest_center").align(canvas)
    assert largest.n_faces >= 2 and central.n_faces >= 2
    cx = lambda r: (r.box[0] + r.box[2]) / 2  # noqa: E731
    assert cx(largest) < 250 and abs(cx(central) - 350) < 40
    assert largest.status == central.status == "ok"


def test_landmark_offset_moves_only_the_landmarks(face_a):
    raw = get_detector(DetectorSettings(landmark_offset=0.0)).detect_one(face_a)
    ours = get_detector(DetectorSettings()).detect_one(face_a)
    assert LANDMARK_OFFSET == -0.5
    np.testing.assert_allclose(ours.landmarks, raw.landmarks - 0.5, atol=1e-4)
    np.testing.assert_allclose(ours.boxes, raw.boxes, atol=1e-4)  # boxes stay facenet-pytorch's (facenet_160)

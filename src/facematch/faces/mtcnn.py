"""MTCNN's three stages over a batch of equal-size images, with the stage-2/3 crops resampled in one call.

The stages, thresholds, box arithmetic and NMS are facenet-pytorch's (its ``detect_face`` helpers are
reused). Written out here for one reason: ``detect_face`` resizes every candidate box to 24x24 / 48x48 with
its own ``interpolate`` call, tens of boxes per photo, and those per-box calls cost about a third of
detection on a CPU. :func:`area_resize_boxes` computes all of them at once from an integral image, bit for
bit what ``interpolate(mode="area")`` gives (tested against it).
"""

from __future__ import annotations

import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import (
    batched_nms,
    batched_nms_numpy,
    bbreg,
    generateBoundingBox,
    imresample,
    pad,
    rerec,
)


def area_resize_boxes(imgs: torch.Tensor, inds: torch.Tensor, y0, y1, x0, x1, size: int) -> torch.Tensor:
    """``interpolate(imgs[inds[k], :, y0[k]:y1[k], x0[k]:x1[k]], (size, size), mode="area")`` for every k.

    ``imgs`` (N, C, H, W) float holding whole numbers 0..255 (decoded pixels), so an integer integral image
    gives each window's sum exactly, as area interpolation (adaptive average pooling) adds it up; the
    division is then done as ATen does it, ``sum / kh / kw`` in float32."""
    dev = imgs.device
    as_t = lambda v: torch.as_tensor(np.asarray(v), dtype=torch.long, device=dev)  # noqa: E731
    y0, y1, x0, x1 = as_t(y0), as_t(y1), as_t(x0), as_t(x1)
    n, c, h, w = imgs.shape
    wide = torch.int64 if h * w * 255 >= 2**31 else torch.int32
    integral = torch.zeros(n, h + 1, w + 1, c, dtype=wide, device=dev)
    integral[:, 1:, 1:] = imgs.permute(0, 2, 3, 1).to(wide).cumsum(1, dtype=wide).cumsum(2, dtype=wide)
    flat = integral.view(-1, c)
    i = torch.arange(size, device=dev)

    def windows(lo, hi):  # adaptive pooling's window bounds: floor(i*L/size), ceil((i+1)*L/size)
        length = (hi - lo)[:, None]
        return lo[:, None] + (i * length) // size, lo[:, None] - ((-(i + 1) * length) // size)

    rs, re = windows(y0, y1)
    cs, ce = windows(x0, x1)
    base = inds.to(dev).long()[:, None, None] * ((h + 1) * (w + 1))
    r0, r1 = base + rs[:, :, None] * (w + 1), base + re[:, :, None] * (w + 1)
    c0, c1 = cs[:, None, :], ce[:, None, :]

    def at(r, col):
        return flat.index_select(0, (r + col).reshape(-1))

    total = at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0)
    kh = (re - rs).float()[:, :, None].expand(-1, -1, size).reshape(-1, 1)
    kw = (ce - cs).float()[:, None, :].expand(-1, size, -1).reshape(-1, 1)
    out = total.float() / kh / kw
    return out.view(-1, size, size, c).permute(0, 3, 1, 2).contiguous()


def _crops(imgs, boxes, image_inds, w, h, size):
    """The normalised ``size`` x ``size`` crops of the boxes that overlap their image, and which boxes those are."""
    y, ey, x, ex = (np.asarray(v, dtype=np.int64) for v in pad(boxes, w, h))
    ok = (ey > y - 1) & (ex > x - 1)
    keep = torch.as_tensor(ok, device=boxes.device)
    data = area_resize_boxes(imgs, image_inds[keep], y[ok] - 1, ey[ok], x[ok] - 1, ex[ok], size)
    return (data - 127.5) * 0.0078125, keep


def _run(net, data: torch.Tensor, chunk: int = 512):
    """``net`` over ``data`` in chunks of 512 rows, as facenet-pytorch does (same kernels, same results)."""
    outs = [net(data[i: i + chunk]) for i in range(0, len(data), chunk)]
    return tuple(torch.cat(parts) for parts in zip(*outs))


@torch.no_grad()
def detect_batch(images: np.ndarray, pnet, rnet, onet, min_face_size: int, thresholds, factor: float,
                 device: str | torch.device = "cpu"):
    """``(boxes, points)`` per image of ``images`` (N, H, W, 3) uint8: boxes (n_i, 5) as x1, y1, x2, y2,
    score; points (n_i, 5, 2). The same results as facenet-pytorch's ``detect_face``."""
    dev = torch.device(device)
    imgs = torch.as_tensor(images, device=dev).permute(0, 3, 1, 2).float()
    n, h, w = imgs.shape[0], imgs.shape[2], imgs.shape[3]
    m = 12.0 / min_face_size
    minl = min(h, w) * m
    scales, scale = [], m
    while minl >= 12:
        scales.append(scale)
        scale, minl = scale * factor, minl * factor

    boxes, image_inds, picks, offset = [], [], [], 0
    for scale in scales:  # stage 1: P-Net over the pyramid
        data = (imresample(imgs, (int(h * scale + 1), int(w * scale + 1))) - 127.5) * 0.0078125
        reg, probs = pnet(data)
        b, bi = generateBoundingBox(reg, probs[:, 1], scale, thresholds[0])
        boxes.append(b)
        image_inds.append(bi)
        picks.append(batched_nms(b[:, :4], b[:, 4], bi, 0.5) + offset)
        offset += b.shape[0]
    boxes, image_inds = torch.cat(boxes), torch.cat(image_inds)
    pick = torch.cat(picks)
    boxes, image_inds = boxes[pick], image_inds[pick]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                         boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4]]).permute(1, 0)
    boxes = rerec(boxes)

    if len(boxes):  # stage 2: R-Net on 24x24 crops
        data, keep = _crops(imgs, boxes, image_inds, w, h, 24)
        boxes, image_inds = boxes[keep], image_inds[keep]
        reg, probs = _run(rnet, data)
        score = probs[:, 1]
        ok = score > thresholds[1]
        boxes = torch.cat((boxes[ok, :4], score[ok].unsqueeze(1)), dim=1)
        image_inds, reg = image_inds[ok], reg[ok]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes = rerec(bbreg(boxes[pick], reg[pick]))
        image_inds = image_inds[pick]

    points = torch.zeros(0, 5, 2, device=dev)
    if len(boxes):  # stage 3: O-Net on 48x48 crops, landmarks
        data, keep = _crops(imgs, boxes, image_inds, w, h, 48)
        boxes, image_inds = boxes[keep], image_inds[keep]
        reg, marks, probs = _run(onet, data)
        score = probs[:, 1]
        ok = score > thresholds[2]
        marks, reg = marks[ok], reg[ok]
        boxes = torch.cat((boxes[ok, :4], score[ok].unsqueeze(1)), dim=1)
        image_inds = image_inds[ok]
        bw, bh = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        px = bw[:, None] * marks[:, :5] + boxes[:, 0:1] - 1
        py = bh[:, None] * marks[:, 5:10] + boxes[:, 1:2] - 1
        points = torch.stack((px, py), dim=2)
        boxes = bbreg(boxes, reg)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    boxes, points, image_inds = boxes.cpu().numpy(), points.cpu().numpy(), image_inds.cpu().numpy()
    return [(boxes[image_inds == i], points[image_inds == i]) for i in range(n)]

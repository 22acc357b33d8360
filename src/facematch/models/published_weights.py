"""Where published backbone weights are fetched from: name, sha256 and mirror paths, without importing torch
(``facematch-data download`` lists them; :mod:`facematch.models.weights` loads what they fetch)."""

from __future__ import annotations

from facematch.utils.fetch import Remote

#: The MobileFaceNet CASIA-WebFace checkpoint (arch=mobilefacenet arch.pretrained=casia-webface): model/best/068.ckpt
#: of github.com/Xiaoccer/MobileFaceNet_Pytorch (ArcFace head on CASIA-WebFace, epoch 68), published only there.
MOBILEFACENET_CASIA = Remote("mobilefacenet_casia_068.ckpt",
                             "e839247cdbdfc023fb7cadeaf53a4549d50c8fc24ad154c02e35920ea8910d99",
                             (("github", "model/best/068.ckpt"),))
MOBILEFACENET_PRETRAINED = {"casia-webface": MOBILEFACENET_CASIA}

"""The learned quality score: CR-FIQA's target and a small regression head on the trunk's features.

Target (Boutros et al., CR-FIQA, CVPR 2023): for a face ``x`` of person ``p`` with feature ``f``,

    CR(x) = CCS / (NNCCS + 1 + eps),  CCS = cos(f, c_p),  NNCCS = max_{q != p} cos(f, c_q)

where ``c_q`` is person ``q``'s class centre: here the mean of the unit-norm features of q's *undegraded*
training crops (CR-FIQA uses the classifier's weight vectors; a frozen pretrained trunk has none for the
people it is adapted on). A degraded or otherwise unrecognisable face drifts from its own centre towards
others: a low CR.

Head: ``feature / scale -> Linear(D, hidden) -> ReLU -> Linear(hidden, 1)``, where ``scale`` is the mean
feature norm of its training crops (the raw feature, not its unit vector: the norm carries quality too).
Trained with a smooth-L1 loss (as CR-FIQA) by :func:`fit_head`, on CPU, seeded: the same inputs give the same
head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

EPS = 1e-9


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def class_centres(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, D) unit-norm mean of each class's unit-norm features (labels 0..C-1, every class present)."""
    f = unit(features.float())
    sums = torch.zeros(n_classes, f.shape[1], dtype=f.dtype).index_add_(0, labels.long(), f)
    return unit(sums)


def certainty_ratio(features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """CR of each feature (module docstring) against ``centres`` (C >= 2 unit-norm rows)."""
    if centres.shape[0] < 2:
        raise ValueError("the certainty ratio needs at least two class centres")
    cos = unit(features.float()) @ centres.T
    own = cos.gather(1, labels.long().view(-1, 1)).squeeze(1)
    others = cos.scatter(1, labels.long().view(-1, 1), float("-inf")).max(dim=1).values
    return own / (others + 1.0 + EPS)


class QualityHead(nn.Module):
    def __init__(self, dim: int, hidden: int = 32, scale: float = 1.0):
        super().__init__()
        self.scale = float(scale)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.float() / self.scale).squeeze(1)

    def as_dict(self) -> dict:
        lin1, lin2 = self.net[0], self.net[2]
        return {"dim": lin1.in_features, "hidden": lin1.out_features, "scale": self.scale,
                "w1": lin1.weight.detach().tolist(), "b1": lin1.bias.detach().tolist(),
                "w2": lin2.weight.detach().tolist(), "b2": lin2.bias.detach().tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "QualityHead":
        head = cls(int(d["dim"]), int(d["hidden"]), float(d["scale"]))
        with torch.no_grad():
            for lin, w, b in ((head.net[0], "w1", "b1"), (head.net[2], "w2", "b2")):
                lin.weight.copy_(torch.tensor(d[w], dtype=torch.float32))
                lin.bias.copy_(torch.tensor(d[b], dtype=torch.float32))
        return head.eval()

    @torch.no_grad()
    def score(self, features: np.ndarray) -> np.ndarray:
        """The predicted CR of each (N, D) feature row."""
        return self(torch.as_tensor(np.asarray(features, np.float32))).numpy()


@dataclass(frozen=True)
class FitSettings:
    hidden: int = 32
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0


def fit_head(features: np.ndarray, targets: np.ndarray, settings: FitSettings = FitSettings()) -> QualityHead:
    """A :class:`QualityHead` regressing ``targets`` from (N, D) raw ``features`` (seeded, CPU)."""
    x = torch.as_tensor(np.asarray(features, np.float32))
    y = torch.as_tensor(np.asarray(targets, np.float32))
    gen = torch.Generator().manual_seed(settings.seed)
    scale = float(x.norm(dim=1).mean().clamp_min(1e-6))
    head = QualityHead(x.shape[1], settings.hidden, scale)
    with torch.no_grad():  # seeded init, independent of the global torch stream
        for lin in (head.net[0], head.net[2]):
            bound = 1.0 / lin.in_features ** 0.5
            lin.weight.copy_(torch.rand(lin.weight.shape, generator=gen) * 2 * bound - bound)
            lin.bias.copy_(torch.rand(lin.bias.shape, generator=gen) * 2 * bound - bound)
    opt = torch.optim.Adam(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = nn.SmoothL1Loss(beta=0.1)
    head.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only add synchronisation
    try:
        for _ in range(settings.epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), settings.batch_size):
                idx = order[i: i + settings.batch_size]
                opt.zero_grad()
                loss_fn(head(x[idx]), y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return head.eval()

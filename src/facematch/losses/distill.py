"""Distillation: the student's embedding pulled toward a frozen teacher's (cosine).

The teacher's embedding of the original crop of the same image and view comes with each training batch
(:mod:`facematch.data.distill`); the loss is mean(1 - cos(student, teacher)). It needs no labels, so every
training image counts, people with a single photo too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineDistillLoss(nn.Module):
    """``loss(embeddings, labels, indices_tuple, teacher=T)``: mean over rows of 1 - cos(embeddings, T)."""

    scores_pairs = False  # validation pairs come without teacher embeddings
    takes_teacher = True

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None,
                indices_tuple: tuple[torch.Tensor, ...] | None = None,
                teacher: torch.Tensor | None = None) -> torch.Tensor:
        if teacher is None:
            raise RuntimeError("CosineDistillLoss needs the teacher's embeddings (data.teacher) with the batch")
        if teacher.shape != embeddings.shape:
            raise ValueError(f"teacher embeddings {tuple(teacher.shape)} do not match the student's "
                             f"{tuple(embeddings.shape)}")
        return (1.0 - F.cosine_similarity(embeddings, teacher.to(embeddings.dtype), dim=1)).mean()

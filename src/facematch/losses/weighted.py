"""A weighted sum of losses in pml's call shape, e.g. batch-hard triplet + distillation.

Each term gets ``(embeddings, labels, indices_tuple)``; a term that reads the teacher's embeddings
(``takes_teacher``) gets them too. Terms with class weights are bound like a single such loss.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


class WeightedLosses(nn.Module):
    """``sum_k weights[k] * terms[k](embeddings, labels, indices_tuple)``; ``terms`` and ``weights`` are keyed
    by the same names (a term without a weight weighs 1)."""

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None):
        super().__init__()
        self.terms = nn.ModuleDict(dict(terms))
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.terms))
        if unknown:
            raise ValueError(f"weights for unknown loss terms {unknown}; the terms are {sorted(self.terms)}")
        self.weights = {k: float(weights.get(k, 1.0)) for k in self.terms}

    @property
    def scores_pairs(self) -> bool:
        return all(getattr(t, "scores_pairs", True) for t in self.terms.values())

    @property
    def takes_teacher(self) -> bool:
        return any(getattr(t, "takes_teacher", False) for t in self.terms.values())

    def bind(self, *args, **kwargs) -> None:
        for term in self.terms.values():
            if hasattr(term, "bind"):
                term.bind(*args, **kwargs)

    def imprint_from(self, *args, **kwargs) -> None:
        for term in self.terms.values():
            if hasattr(term, "imprint_from"):
                term.imprint_from(*args, **kwargs)

    def param_groups(self) -> list[dict]:
        return [g for t in self.terms.values() if hasattr(t, "param_groups") for g in t.param_groups()]

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None,
                indices_tuple: tuple[torch.Tensor, ...] | None = None,
                teacher: torch.Tensor | None = None) -> torch.Tensor:
        total = embeddings.sum() * 0.0
        for name, term in self.terms.items():
            extra = {"teacher": teacher} if getattr(term, "takes_teacher", False) else {}
            total = total + self.weights[name] * term(embeddings, labels, indices_tuple, **extra)
        return total

"""A training job finishes the W&B run its logger opened however it ends: on success and on an error (a
multirun's next job would log into a run left open)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from facematch import train as train_module
from facematch.errors import FacematchError


@pytest.fixture
def fake_wandb(monkeypatch):
    calls = []
    wandb = SimpleNamespace(run=object(), finish=lambda: calls.append("finish"))
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    return calls


def test_wandb_finishes_when_the_job_fails(fake_wandb):
    cfg = OmegaConf.create({"data": {"features": {"batch_size": 8}}})  # a renamed key: the job stops at once
    with pytest.raises(FacematchError, match="embed.batch_size"):
        train_module.train(cfg)
    assert fake_wandb == ["finish"]


def test_wandb_finishes_when_the_job_succeeds(fake_wandb, monkeypatch):
    monkeypatch.setattr(train_module, "_train", lambda cfg: {"val/auc": 1.0})
    assert train_module.train(OmegaConf.create({})) == {"val/auc": 1.0}
    assert fake_wandb == ["finish"]


def test_no_wandb_run_nothing_to_finish(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(run=None, finish=lambda: pytest.fail("no run to finish")))
    monkeypatch.setattr(train_module, "_train", lambda cfg: {})
    train_module.train(OmegaConf.create({}))

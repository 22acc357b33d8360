"""ArcFace-style class weights and distillation on the real data: the class weights are checkpointed, come
back on resume (not re-imprinted) and stay out of the model evaluation, compare, the gallery and the export
load; the teacher's targets are the embedder's cached embeddings of the original crops; every new row trains
one fast_dev_run step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facematch.embedding.embedder import Embedder
from facematch.eval.inputs import eval_source
from facematch.models.loading import load_model
from facematch.train import build, train
from tests.helpers import FAST, config_options

NEW_ROWS = [e for e in config_options("experiment")
            if any(k in e for k in ("arcface", "cosface", "distill")) or e == "scratch_mobilefacenet_cpu_triplet"]
# each new row trains one fast_dev_run step, or is one of these with one value changed (checked below)
TRAINED = ["adapt16_arcface", "adapt16_cosface", "adapt16_subcenter_arcface", "adapt16_distill",
           "adapt16_distill_triplet", "adapt16_distill_triplet_last5_originals", "scratch_mobilefacenet_cpu_arcface",
           "scratch_mobilefacenet_cpu_triplet"]
VARIANTS = {**{f"adapt24_{r[8:]}": (r, {"data.degrade.resolution": 24}) for r in TRAINED if r.startswith("adapt16")},
            "scratch_mobilefacenet_cpu_cosface": ("scratch_mobilefacenet_cpu_arcface",
                                                  {"loss_name": "cosface", "margin": 0.35, "margin_unit": "cosine"}),
            "adapt16_distill_triplet_last5": ("adapt16_distill_triplet", {k: 5 for k in (  # arch and its copies
                "arch.unfreeze_last", "data.teacher.arch.unfreeze_last", "model.net.backbone.unfreeze_last")}),
            "adapt16_distill_last5_originals": ("adapt16_distill", {**{k: 5 for k in (
                "arch.unfreeze_last", "data.teacher.arch.unfreeze_last", "model.net.backbone.unfreeze_last")},
                "data.features.originals": True})}
VARIANTS["adapt24_distill_last5_originals"] = ("adapt16_distill_last5_originals", {"data.degrade.resolution": 24})


def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "margin-distill-cache"  # the rows' trunk activations are the same


@pytest.mark.usefixtures("data_dir", "mfn_weights")
# the resume below goes into a bare Trainer with a spy instead of the run's checkpoint callbacks, on purpose
@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`:UserWarning")
def test_class_weights_are_checkpointed_restored_on_resume_and_never_exported(cfg_factory, tmp_path, tmp_path_factory):
    from lightning.pytorch.callbacks import Callback

    common = ["experiment=adapt16_arcface", *FAST, "data.max_identities=16", "trainer.limit_train_batches=2",
              "trainer.limit_val_batches=1", "logger=csv", "test=false", "evaluate=false", "validate_first=false",
              f"paths.cache_dir={shared_cache(tmp_path_factory)}"]
    train(cfg_factory(*common, "trainer.max_epochs=1", out="first"))
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    w = state["loss.inner.W"]
    assert w.shape[0] == 128 and w.shape[1] >= 10  # one column per training person

    seen = {}

    class Spy(Callback):
        def on_train_start(self, trainer, pl_module):
            seen["W"] = pl_module.loss.weight.detach().clone()

    cfg = cfg_factory(*common, "trainer.max_epochs=2", f"ckpt_path={ckpt}", out="resumed")
    model, dm = build(cfg)
    import lightning as L

    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, logger=False, callbacks=[Spy()],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    model.loss.imprint_from = None  # resuming never imprints (this would fail): the checkpoint's weights come back
    trainer.fit(model, datamodule=dm, ckpt_path=str(ckpt), weights_only=True)
    torch.testing.assert_close(seen["W"], w, rtol=0, atol=0)

    import argparse

    from facematch.app import model_args

    evaluated = load_model(str(ckpt), None)  # what facematch-eval and facematch-export load
    served = model_args.load_model(argparse.Namespace(ckpt=str(ckpt), onnx=None))  # compare and the gallery
    for model in (evaluated, served):
        tensors = model.module.state_dict()
        assert not any("loss" in k for k in tensors) and all(t.shape != w.shape for t in tensors.values())
    import onnx
    from onnx import numpy_helper

    from facematch.models.onnx_export import export_model

    exported = export_model(evaluated, tmp_path / "model.onnx")
    shapes = {tuple(numpy_helper.to_array(t).shape) for t in onnx.load(str(exported.path)).graph.initializer}
    assert tuple(w.shape) not in shapes and tuple(w.t().shape) not in shapes


@pytest.mark.usefixtures("data_dir", "mfn_weights")
def test_teacher_targets_are_the_cached_embeddings_of_the_original_crops(cfg_factory, tmp_path_factory):
    cache = shared_cache(tmp_path_factory)
    cfg = cfg_factory("experiment=adapt16_distill", *FAST, "data.max_identities=16", "data.min_images=1",
                      "embed.num_workers=0", f"paths.cache_dir={cache}")
    _, dm = build(cfg)
    dm.setup("fit")
    ds = dm.train_set
    assert min(np.bincount(ds.targets)) == 1  # people with a single photo train too
    teacher = load_model(None, dict(cfg.arch))  # the pretrained backbone, as facematch-eval loads it
    original = eval_source(cfg, teacher.spec.template, degraded=False)
    embedder = Embedder(teacher.module, teacher.spec, original, flip="concat", fingerprint=teacher.fingerprint,
                        cache_dir=cache / "embeddings", num_workers=0, progress=False)
    views, paths = embedder.embed_views(ds.paths)
    assert embedder.stats["cache_hits"] == len(paths) == len(ds.paths)  # computed once, by the teacher
    for rel, v in zip(paths, views):
        np.testing.assert_array_equal(ds.teacher[rel], v)
    fresh = Embedder(teacher.module, teacher.spec, original, flip="concat", num_workers=0, progress=False)
    np.testing.assert_allclose(fresh.embed_views(paths[:4])[0], views[:4], rtol=1e-5, atol=1e-5)  # not stale

    acts = dm.feature_store(ds.paths[0])  # (K, D): the degraded crop's cached activations, plain and mirror
    for _ in range(6):  # each item: a random view, and the teacher's embedding of the same view
        item = ds[0]
        k = next(i for i in range(len(acts)) if np.array_equal(acts[i], item.x.numpy()))
        np.testing.assert_array_equal(item.teacher.numpy(), ds.teacher[ds.paths[0]][k % 2])


@pytest.mark.parametrize("experiment", TRAINED)
@pytest.mark.usefixtures("data_dir", "mfn_weights")
def test_new_rows_train_one_step(cfg_factory, experiment, tmp_path_factory):
    cfg = cfg_factory(f"experiment={experiment}", *FAST, "data.max_identities=16", "trainer.fast_dev_run=true",
                      "logger=csv", f"paths.cache_dir={shared_cache(tmp_path_factory)}", "embed.num_workers=0",
                      "embed.progress=false")
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss_step"])) and 0.0 <= metrics["val/auc"] <= 1.0


def test_every_new_row_is_trained_above_or_one_value_away_from_one_that_is(cfg_factory):
    from omegaconf import OmegaConf

    assert sorted(TRAINED + list(VARIANTS)) == sorted(NEW_ROWS)

    def flat(name: str) -> dict:
        cfg = OmegaConf.to_container(cfg_factory(f"experiment={name}", out="compared"), resolve=True)
        cfg.pop("exp_name"), cfg.pop("paths"), cfg.pop("published", None)  # names and published figures
        out, todo = {}, [("", cfg)]
        while todo:
            prefix, node = todo.pop()
            for k, v in node.items():
                (todo.append((f"{prefix}{k}.", v)) if isinstance(v, dict) else out.__setitem__(f"{prefix}{k}", v))
        return out

    for row, (base, changed) in VARIANTS.items():
        a, b = flat(row), flat(base)
        for cfg in (a, b):  # each margin-softmax row uses its loss's documented margin (docs/losses.md)
            assert cfg.get("margin") == {"arcface": 0.5, "subcenter_arcface": 0.5, "cosface": 0.35}.get(
                cfg["loss_name"], cfg.get("margin")), row
        differ = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        loss_keys = {k for k in differ if k.startswith(("loss.", "model.loss.", "hydra."))}
        assert differ - loss_keys == set(changed), row  # the loss class and the sweep follow the changed values
        assert all(a[k] == v for k, v in changed.items()), row


def test_the_tuned_row_composes_to_the_command_its_figures_were_measured_with(cfg_factory):
    """docs/losses.md: the 16 px figures of adapt16_distill_triplet_last5_originals were measured as
    ``experiment=adapt16_distill_triplet arch.unfreeze_last=5 data.features.originals=true`` (a probe under
    another exp_name); the row file must compose to exactly that."""
    from omegaconf import OmegaConf

    def plain(*overrides):
        cfg = OmegaConf.to_container(cfg_factory(*overrides, out="tuned"), resolve=True)
        cfg.pop("exp_name"), cfg.pop("paths")
        return cfg

    assert plain("experiment=adapt16_distill_triplet_last5_originals") == plain(
        "experiment=adapt16_distill_triplet", "arch.unfreeze_last=5", "data.features.originals=true")
    assert plain("experiment=adapt16_distill_triplet_last5") == plain(
        "experiment=adapt16_distill_triplet", "arch.unfreeze_last=5")  # the row measured as probe16_dt_last5


def test_from_scratch_loss_rows_share_one_budget(cfg_factory):
    """The three from-scratch rows see the same images in steps of the same size (P x K for triplet, the
    shuffled batch for ArcFace / CosFace), without augmentation or weight decay (docs/losses.md)."""
    budgets = set()
    for loss in ("triplet", "arcface", "cosface"):
        cfg = cfg_factory(f"experiment=scratch_mobilefacenet_cpu_{loss}", out="budget")
        step = cfg.data.pk.p * cfg.data.pk.k if cfg.loss_name == "triplet" else cfg.data.batch_size
        budgets.add((cfg.data.train_samples * cfg.trainer.max_epochs, step, cfg.data.augment.enabled,
                     float(cfg.optimizer.weight_decay)))
    assert budgets == {(20736, 16, False, 0.0)}

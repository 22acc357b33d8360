"""Every config option composes and instantiates, without data: groups, losses, miners and the batches
they need, heads, optimizers x schedulers, trainers, loggers and callbacks, experiments. On the real data
and the command line: tests/integration/test_configs.py."""

from __future__ import annotations

import lightning as L
import pytest
from hydra.utils import instantiate
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner
from pytorch_metric_learning.reducers import MeanReducer

from facematch.config import instantiate_collection, instantiate_optional
from facematch.data.batches import ImageBatches, PairBatches, PKBatches, TripletBatches
from facematch.lit.module import SiameseModule
from facematch.losses.contrastive import ContrastiveLoss
from facematch.losses.distill import CosineDistillLoss
from facematch.losses.margin import ClassMarginLoss
from facematch.miners.top_k import TopKTripletMiner
from facematch.losses.triplet import TripletMarginLoss
from facematch.models.heads import LinearHead, MLPHead
from facematch.models.net import EmbeddingNet
from facematch.train import build
from tests.helpers import config_options as options

LOSSES = {"contrastive": ContrastiveLoss, "triplet": TripletMarginLoss, "arcface": ClassMarginLoss,
          "cosface": ClassMarginLoss, "subcenter_arcface": ClassMarginLoss, "distill": CosineDistillLoss}
BATCHES = {"contrastive": PairBatches, "triplet": TripletBatches}  # fixed rows; the other losses: ImageBatches


def test_groups_have_the_expected_options():
    assert set(options("arch")) >= {"inception_resnet_v1", "inception_resnet_v1_vggface2", "mobilefacenet", "resnet50",
                                    "resnet50_imagenet"}  # and one per added backbone: tests/unit/test_registry.py
    assert options("loss") == ["arcface", "contrastive", "cosface", "distill", "subcenter_arcface", "triplet"]
    assert options("distill") == ["_teacher", "none", "term"]
    assert options("miner") == ["batch_hard", "none", "semi_hard", "top_k"]
    assert options("head") == ["facenet", "linear", "mlp"]
    assert options("model") == ["siamese"]
    assert options("optimizer") == ["adam", "adamw", "sgd"]
    assert options("scheduler") == ["cosine", "none", "reduce_on_plateau", "step"]
    assert set(options("data")) >= {"lfw_photos", "vggface2", "pair_list", "lfw_aligned112", "lfw_photos_mtcnn"}
    assert set(options("trainer")) >= {"cpu", "gpu", "ddp"}
    assert set(options("logger")) >= {"tensorboard", "csv"}


@pytest.mark.parametrize("arch", options("arch"))
@pytest.mark.parametrize("loss", options("loss"))
def test_arch_x_loss_builds(cfg_factory, arch, loss):
    cfg = cfg_factory(f"arch={arch}", f"loss={loss}", "arch.pretrained=null", "head.dim=128")  # offline
    model, dm = build(cfg)
    assert type(model) is SiameseModule and isinstance(model.net, EmbeddingNet)
    assert model.net.backbone.spec.name == cfg.arch.name and dm.spec == model.net.backbone.spec
    assert model.net.head.in_dim == model.net.backbone.spec.embedding_dim
    assert type(model.loss) is LOSSES[loss] and model.miner is None
    if loss != "distill":  # distillation has no margin; each loss config sets its own default
        assert model.loss.margin == cfg.margin == {"cosface": 0.35, "triplet": 0.2}.get(loss, 0.5)
    assert type(dm.batches) is BATCHES.get(loss, ImageBatches)


def test_triplet_loss_is_pml_on_normalised_euclidean_distance_with_a_plain_mean(cfg_factory):
    loss = build(cfg_factory("arch=mobilefacenet", "loss=triplet"))[0].loss
    assert isinstance(loss.distance, LpDistance) and loss.distance.normalize_embeddings and loss.distance.p == 2
    assert isinstance(loss.reducer, MeanReducer)


@pytest.mark.parametrize("loss", options("loss"))
@pytest.mark.parametrize("miner", options("miner"))
def test_miner_objects_and_the_batches_they_need(cfg_factory, loss, miner):
    # distillation alone reads no margin, so its config has none: a miner that reads one is given it (+margin=)
    cfg = cfg_factory("arch=mobilefacenet", f"loss={loss}", f"miner={miner}",
                      "+margin=0.3" if loss == "distill" else "margin=0.3")
    model, dm = build(cfg)
    expected = {"none": type(None), "batch_hard": BatchHardMiner, "semi_hard": TripletMarginMiner,
                "top_k": TopKTripletMiner}[miner]
    assert type(model.miner) is expected and cfg.miner_name == miner and cfg.loss_name == loss
    if miner in ("semi_hard", "top_k"):
        assert model.miner.margin == 0.3 == getattr(model.loss, "margin", 0.3)  # distillation has no margin
    if miner == "semi_hard":
        assert model.miner.type_of_triplets == "semihard"
    if miner == "top_k":  # the k highest-loss of the batch's own random triplets
        assert model.miner.distance.normalize_embeddings and type(dm.batches) is TripletBatches
    elif miner != "none":
        assert model.miner.distance.normalize_embeddings
        assert type(dm.batches) is PKBatches  # a miner needs P x K batches, whatever the loss
    else:
        assert type(dm.batches) is BATCHES.get(loss, ImageBatches)  # losses on labelled images: shuffled images


@pytest.mark.parametrize("head,cls", [("linear", LinearHead), ("mlp", MLPHead), ("facenet", MLPHead)])
def test_head_options_are_built_for_the_backbone(cfg_factory, head, cls):
    model, _ = build(cfg_factory("arch=resnet50", f"head={head}"))
    assert type(model.net.head) is cls and model.net.head.in_dim == 2048
    assert model.net.head.dim == {"linear": 2048, "mlp": 128, "facenet": 128}[head]
    assert model.net.head.scale == {"linear": 1.0, "mlp": 1.0, "facenet": 10.0}[head]


def test_command_line_groups_reach_the_nested_model(cfg_factory):
    """``model`` nests everything (lightning-hydra-template style), yet the top-level groups still decide."""
    cfg = cfg_factory("arch=mobilefacenet", "loss=triplet", "miner=batch_hard", "head=mlp", "head.dim=64",
                      "optimizer=sgd", "optimizer.lr=0.05", "scheduler=none", "protocol.threshold=0.4")
    model, dm = build(cfg)
    assert cfg.model._target_ == "facematch.lit.module.SiameseModule"
    assert model.net.backbone.spec.name == "mobilefacenet"
    assert type(model.net.head) is MLPHead and model.net.head.dim == 64
    assert type(model.loss) is TripletMarginLoss and type(model.miner) is BatchHardMiner
    assert type(dm.batches) is PKBatches
    optimizer = model.configure_optimizers()
    assert type(optimizer).__name__ == "SGD" and optimizer.defaults["lr"] == 0.05  # no scheduler: just the optimizer
    assert model.threshold == 0.4 and dict(model.hparams) == {"threshold": 0.4, "monitor": "val/auc"}


@pytest.mark.parametrize("opt", options("optimizer"))
@pytest.mark.parametrize("sched", options("scheduler"))
def test_optimizer_x_scheduler(cfg_factory, opt, sched):
    cfg = cfg_factory(f"optimizer={opt}", f"scheduler={sched}", "arch=mobilefacenet")
    model, _ = build(cfg)
    out = model.configure_optimizers()
    optimizer = out["optimizer"] if isinstance(out, dict) else out
    assert type(optimizer).__name__.lower() == opt
    if sched == "none":
        assert not isinstance(out, dict)
    else:
        assert out["lr_scheduler"]["monitor"] == "val/auc"


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_options_instantiate(cfg_factory, trainer):
    cfg = cfg_factory(f"trainer={trainer}", "trainer.accelerator=cpu", "trainer.devices=1")
    t = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert isinstance(t, L.Trainer)


@pytest.mark.parametrize("logger", options("logger"))
@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_logger_and_callbacks_instantiate(cfg_factory, logger, callbacks, tmp_path):
    # loggers that open a store when built (mlflow) write it under paths.log_dir: a temporary one, not ./outputs
    cfg = cfg_factory(f"logger={logger}", f"callbacks={callbacks}", f"paths.log_dir={tmp_path}")
    loggers = instantiate_collection(cfg.get("logger"))
    cbs = instantiate_collection(cfg.get("callbacks"))
    assert loggers and all(hasattr(x, "log_metrics") for x in loggers)
    assert (len(cbs) > 0) == (callbacks != "none")


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose(cfg_factory, experiment):
    cfg = cfg_factory(f"experiment={experiment}")
    assert cfg.arch.name and cfg.loss._target_ and cfg.data.batches._target_ and cfg.loss_name and cfg.miner_name
    # a row reports under its file's name; a shared block (_-prefixed) names no row
    assert cfg.exp_name == (None if experiment.startswith("_") else experiment)


def test_scheduler_none_is_none(cfg_factory):
    assert instantiate_optional(cfg_factory("scheduler=none").get("scheduler")) is None


def test_margin_is_one_value_read_by_either_loss(cfg_factory):
    for loss in ("contrastive", "triplet"):
        cfg = cfg_factory(f"loss={loss}", "margin=1.7", "arch=mobilefacenet")
        assert build(cfg)[0].loss.margin == 1.7

"""Every config option composes and instantiates; a wrong option fails with Hydra's own list."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import pytest
from hydra.utils import instantiate
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner
from pytorch_metric_learning.reducers import MeanReducer

from facematch.config import config_dir, instantiate_collection, instantiate_optional
from facematch.data.batches import PairBatches, PKBatches, TripletBatches
from facematch.lit.module import SiameseModule
from facematch.losses.contrastive import ContrastiveLoss
from facematch.losses.triplet import TripletMarginLoss
from facematch.models.heads import LinearHead, MLPHead
from facematch.models.net import EmbeddingNet
from facematch.train import build, train
from tests.helpers import FAST, run_cli

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_have_the_expected_options():
    assert options("arch") == ["inception_resnet_v1", "mobilefacenet", "resnet50"]
    assert options("loss") == ["contrastive", "triplet"]
    assert options("miner") == ["batch_hard", "none", "semi_hard"]
    assert options("head") == ["linear", "mlp"]
    assert options("model") == ["siamese"]
    assert options("optimizer") == ["adam", "adamw", "sgd"]
    assert options("scheduler") == ["cosine", "none", "reduce_on_plateau", "step"]
    assert set(options("data")) >= {"lfw", "vggface2", "pair_list", "lfw_aligned", "lfw_own_aligned"}
    assert set(options("trainer")) >= {"cpu", "gpu", "ddp"}
    assert set(options("logger")) >= {"tensorboard", "csv"}


@pytest.mark.parametrize("arch", options("arch"))
@pytest.mark.parametrize("loss", options("loss"))
def test_arch_x_loss_builds(cfg_factory, arch, loss):
    cfg = cfg_factory(f"arch={arch}", f"loss={loss}")
    model, dm = build(cfg)
    assert type(model) is SiameseModule and isinstance(model.net, EmbeddingNet)
    assert model.net.backbone.spec.name == arch and dm.spec == model.net.backbone.spec
    assert model.net.head.in_dim == model.net.backbone.spec.embedding_dim
    assert type(model.loss) is {"contrastive": ContrastiveLoss, "triplet": TripletMarginLoss}[loss]
    assert model.loss.margin == cfg.margin == 0.5 and model.miner is None
    assert type(dm.batches) is {"contrastive": PairBatches, "triplet": TripletBatches}[loss]


def test_triplet_loss_is_pml_on_normalised_euclidean_distance_with_a_plain_mean(cfg_factory):
    loss = build(cfg_factory("arch=mobilefacenet", "loss=triplet"))[0].loss
    assert isinstance(loss.distance, LpDistance) and loss.distance.normalize_embeddings and loss.distance.p == 2
    assert isinstance(loss.reducer, MeanReducer)


@pytest.mark.parametrize("loss", options("loss"))
@pytest.mark.parametrize("miner", options("miner"))
def test_miner_objects_and_the_batches_they_need(cfg_factory, loss, miner):
    cfg = cfg_factory("arch=mobilefacenet", f"loss={loss}", f"miner={miner}", "margin=0.3")
    model, dm = build(cfg)
    expected = {"none": type(None), "batch_hard": BatchHardMiner, "semi_hard": TripletMarginMiner}[miner]
    assert type(model.miner) is expected and cfg.miner_name == miner and cfg.loss_name == loss
    if miner == "semi_hard":
        assert model.miner.type_of_triplets == "semihard" and model.miner.margin == 0.3 == model.loss.margin
    if miner != "none":
        assert model.miner.distance.normalize_embeddings
        assert type(dm.batches) is PKBatches  # a miner needs P x K batches, whatever the loss
    else:
        assert type(dm.batches) is {"contrastive": PairBatches, "triplet": TripletBatches}[loss]


@pytest.mark.parametrize("head,cls", [("linear", LinearHead), ("mlp", MLPHead)])
def test_head_options_are_built_for_the_backbone(cfg_factory, head, cls):
    model, _ = build(cfg_factory("arch=resnet50", f"head={head}"))
    assert type(model.net.head) is cls and model.net.head.in_dim == 2048
    assert model.net.head.dim == {"linear": 2048, "mlp": 128}[head]


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


@pytest.mark.parametrize("data", options("data"))
def test_data_options_instantiate(cfg_factory, data, data_dir):
    extra = ["data.root=" + str(data_dir / "vggface2-samples" / "tight_crop")] if data == "vggface2" else []
    cfg = cfg_factory(f"data={data}", "arch=mobilefacenet", "data.val_fraction=0.34", "data.num_workers=0", *extra)
    _, dm = build(cfg)
    if data == "vggface2":  # the 3-person sample set is too small to split; check its index instead
        assert len(dm._base_index().identities) == 3
        return
    dm.setup("fit")
    assert len(dm.val_set) > 0 and len(dm.train_set) > 0


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_options_instantiate(cfg_factory, trainer):
    cfg = cfg_factory(f"trainer={trainer}", "trainer.accelerator=cpu", "trainer.devices=1")
    t = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert isinstance(t, L.Trainer)


@pytest.mark.parametrize("logger", options("logger"))
@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_logger_and_callbacks_instantiate(cfg_factory, logger, callbacks):
    cfg = cfg_factory(f"logger={logger}", f"callbacks={callbacks}")
    loggers = instantiate_collection(cfg.get("logger"))
    cbs = instantiate_collection(cfg.get("callbacks"))
    assert loggers and all(hasattr(x, "log_metrics") for x in loggers)
    assert (len(cbs) > 0) == (callbacks != "none")


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose(cfg_factory, experiment):
    cfg = cfg_factory(f"experiment={experiment}")
    assert cfg.arch.name and cfg.loss._target_ and cfg.data.batches._target_ and cfg.loss_name and cfg.miner_name


def offline(cfg_factory, experiment: str, *overrides: str):
    """An experiment row with offline stand-ins: random weights where it downloads them or needs a file
    there is none of (face-pretrained ResNet-50), centre crops where it aligns raw photos (MTCNN)."""
    cfg = cfg_factory(f"experiment={experiment}", *overrides)
    extra = ["arch.pretrained=null"] if cfg.arch.pretrained else []
    extra += ["arch.weights=null"] if cfg.arch.name == "resnet50" else []
    extra += ["data.preprocess.mode=center"] if cfg.data.preprocess.mode == "align" else []
    return cfg_factory(f"experiment={experiment}", *extra, *overrides, out="offline") if extra else cfg


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_instantiates(cfg_factory, experiment):
    cfg = offline(cfg_factory, experiment)
    model, dm = build(cfg)
    miner = {"none": type(None), "batch_hard": BatchHardMiner, "semi_hard": TripletMarginMiner}[cfg.miner_name]
    fixed_rows = {"contrastive": PairBatches, "triplet": TripletBatches}[cfg.loss_name]
    assert type(model.miner) is miner and type(dm.batches) is (PKBatches if cfg.miner_name != "none" else fixed_rows)
    assert type(model.loss) is {"contrastive": ContrastiveLoss, "triplet": TripletMarginLoss}[cfg.loss_name]
    assert model.loss.margin == cfg.margin and model.net.backbone.spec.name == cfg.arch.name
    assert model.net.head.centered == cfg.head.center and model.net.backbone.fully_frozen == cfg.arch.freeze
    optimizer = model.configure_optimizers()["optimizer"]
    assert type(optimizer).__name__.lower() == cfg.optimizer._target_.rsplit(".")[-1].lower()


@pytest.mark.parametrize("experiment", ["exp2_contrastive_adam", "exp3_triplet_adam", "exp3_triplet_batch_hard",
                                        "exp3_triplet_semi_hard", "exp4_triplet_sgd", "exp5_contrastive_margins"])
def test_experiment_rows_train_one_step(cfg_factory, experiment, tmp_path_factory):
    """One fast_dev_run step of each fine-tuning row on MobileFaceNet, as configured (pairs, fixed triplets,
    both miners, the centred head, the frozen backbone's cached features), on a small subset. The irv1 /
    ResNet-50 variants differ only in arch and data (instantiated above); exp3_triplet_seedlist's list path
    is tested in test_data."""
    cache = tmp_path_factory.getbasetemp() / "experiment-feature-cache"  # shared: the rows' features are the same
    cfg = offline(cfg_factory, experiment, *FAST, "trainer.fast_dev_run=true", "logger=csv", f"paths.cache_dir={cache}")
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss_step"])) and 0.0 <= metrics["val/auc"] <= 1.0
    assert "initial/val/auc" in metrics  # validate_first, as the rows do


def test_scheduler_none_is_none(cfg_factory):
    assert instantiate_optional(cfg_factory("scheduler=none").get("scheduler")) is None


def test_margin_is_one_value_read_by_either_loss(cfg_factory):
    for loss in ("contrastive", "triplet"):
        cfg = cfg_factory(f"loss={loss}", "margin=1.7", "arch=mobilefacenet")
        assert build(cfg)[0].loss.margin == 1.7


def test_wrong_option_lists_valid_ones():
    r = run_cli(["-m", "facematch.train", "arch=vgg16"])
    assert r.returncode != 0
    assert "Could not find 'arch/vgg16'" in r.stderr
    for name in ("inception_resnet_v1", "mobilefacenet", "resnet50"):
        assert name in r.stderr
    assert "Traceback" not in r.stderr

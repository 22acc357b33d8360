"""Config options on the real data: every data option sets up, every experiment instantiates (with the local
MobileFaceNet weights where it names them) and each fine-tuning row trains one step; a wrong option on the
command line fails with Hydra's own list."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner

from facematch.data.batches import ImageBatches, PairBatches, PKBatches, TripletBatches
from facematch.losses.contrastive import ContrastiveLoss
from facematch.losses.distill import CosineDistillLoss
from facematch.losses.margin import ClassMarginLoss
from facematch.miners.top_k import TopKTripletMiner
from facematch.losses.weighted import WeightedLosses
from facematch.losses.triplet import TripletMarginLoss
from facematch.train import build, train
from tests.helpers import FAST, config_options as options, run_cli


# packed: tests/integration/test_packed.py; bin (insightface validation files, evaluation only): test_bin_sets.py;
# xqlfw (not distributed here): test_cross_quality_eval.py, on a folder made in its layout
@pytest.mark.parametrize("data", [d for d in options("data") if d not in ("packed", "bin", "xqlfw")])
def test_data_options_instantiate(cfg_factory, data, data_dir):
    extra = ["data.root=" + str(data_dir / "vggface2-samples" / "tight_crop")] if data == "vggface2" else []
    cfg = cfg_factory(f"data={data}", "arch=mobilefacenet", "data.val_fraction=0.34", "data.num_workers=0", *extra)
    _, dm = build(cfg)
    if data == "vggface2":  # the 3-person sample set is too small to split; check its index instead
        assert len(dm._base_index().identities) == 3
        return
    dm.setup("fit")
    assert len(dm.val_set) > 0 and len(dm.train_set) > 0


def offline(cfg_factory, experiment: str, *overrides: str):
    """An experiment row with offline stand-ins: random weights where it downloads them or needs a file
    there is none of (face-pretrained ResNet-50), centre crops where it aligns raw photos (MTCNN)."""
    cfg = cfg_factory(f"experiment={experiment}", *overrides)
    extra = ["arch.pretrained=null"] if cfg.arch.pretrained else []
    extra += ["arch.weights=null"] if cfg.arch.name == "resnet50" else []
    extra += ["data.preprocess.mode=center"] if cfg.data.preprocess.mode == "align" else []
    return cfg_factory(f"experiment={experiment}", *extra, *overrides, out="offline") if extra else cfg


@pytest.mark.parametrize("experiment", options("experiment"))
@pytest.mark.usefixtures("mfn_weights")  # the rows fine-tuning MobileFaceNet load its weights
def test_every_experiment_instantiates(cfg_factory, experiment):
    cfg = offline(cfg_factory, experiment)
    model, dm = build(cfg)
    miner = {"none": type(None), "batch_hard": BatchHardMiner, "semi_hard": TripletMarginMiner,
             "top_k": TopKTripletMiner}[cfg.miner_name]
    fixed_rows = {"contrastive": PairBatches, "triplet": TripletBatches}.get(cfg.loss_name, ImageBatches)
    pk = cfg.miner_name in ("batch_hard", "semi_hard")  # top_k mines the batch's own random triplets
    assert type(model.miner) is miner and type(dm.batches) is (PKBatches if pk else fixed_rows)
    loss = model.loss.terms["main"] if type(model.loss) is WeightedLosses else model.loss  # distill=term
    assert type(loss) is {"contrastive": ContrastiveLoss, "triplet": TripletMarginLoss, "distill": CosineDistillLoss,
                          }.get(cfg.loss_name, ClassMarginLoss)
    assert getattr(loss, "margin", None) == cfg.get("margin") and model.net.backbone.spec.name == cfg.arch.name
    backbone = model.net.backbone
    assert model.net.head.centered == cfg.head.center and backbone.frozen == cfg.arch.freeze
    assert backbone.trainable_stages == (cfg.arch.unfreeze_last if cfg.arch.freeze else backbone.n_stages)
    optimizer = model.configure_optimizers()["optimizer"]
    assert type(optimizer).__name__.lower() == cfg.optimizer._target_.rsplit(".")[-1].lower()


@pytest.mark.parametrize("experiment", ["exp2_contrastive_adam", "exp3_triplet_adam", "exp3_triplet_batch_hard",
                                        "exp3_triplet_semi_hard", "exp4_triplet_sgd", "exp5_contrastive_margins",
                                        *(f"adapt{px}_{row}" for px in (16, 24)
                                          for row in ("head", "stages", "stages_contrastive", "full"))])
@pytest.mark.usefixtures("data_dir", "mfn_weights")
def test_experiment_rows_train_one_step(cfg_factory, experiment, tmp_path_factory):
    """One fast_dev_run step of each fine-tuning and adaptation row on MobileFaceNet, as configured (pairs,
    fixed triplets, both miners, the centred head, the frozen backbone's cached features, the last stages on
    cached trunk activations of degraded crops, the full backbone on degraded images), on a small subset. The irv1 /
    ResNet-50 variants differ only in arch and data (instantiated above); exp3_triplet_seedlist's list path
    is tested in test_data."""
    cache = tmp_path_factory.getbasetemp() / "experiment-feature-cache"  # shared: the rows' features are the same
    cfg = offline(cfg_factory, experiment, *FAST, "data.max_identities=16", "trainer.fast_dev_run=true", "logger=csv",
                  f"paths.cache_dir={cache}")
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss_step"])) and 0.0 <= metrics["val/auc"] <= 1.0
    assert "initial/val/auc" in metrics  # validate_first, as the rows do


@pytest.mark.parametrize("experiment", ["scratch_resnet50", "scratch_mobilefacenet", "scratch_resnet50_cpu",
                                        "scratch_mobilefacenet_cpu", "adapt16_full_cpu"])
@pytest.mark.usefixtures("data_dir", "mfn_weights")
def test_scratch_and_cpu_rows_train_one_step(cfg_factory, experiment):
    """One fast_dev_run step of the from-scratch rows (random initialisation, train-time augmentation on
    images) and the reduced CPU rows, on a small subset: every parameter is trainable, from random weights
    where the row says so, and the scratch rows name the published table they sit beside."""
    cfg = offline(cfg_factory, experiment, *FAST, "data.max_identities=16", "trainer.fast_dev_run=true", "logger=csv")
    model, _ = build(cfg)
    assert all(p.requires_grad for p in model.net.backbone.parameters())
    assert (cfg.arch.weights is None) == experiment.startswith("scratch")
    if experiment.startswith("scratch"):
        assert cfg.published.table == "facenet_implementation"  # keyed by margin: tests/unit/test_published.py
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss_step"])) and 0.0 <= metrics["val/auc"] <= 1.0


def test_wrong_option_lists_valid_ones():  # about a second: Lightning is not imported before composing
    r = run_cli(["-m", "facematch.train", "arch=vgg16"])
    assert r.returncode != 0
    assert "Could not find 'arch/vgg16'" in r.stderr
    for name in ("inception_resnet_v1", "mobilefacenet", "resnet50"):
        assert name in r.stderr
    assert "Traceback" not in r.stderr

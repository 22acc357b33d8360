"""Every config option composes and instantiates; a wrong option fails with Hydra's own list."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate

from facematch.config import config_dir, instantiate_collection, instantiate_optional
from facematch.train import build
from tests.conftest import run_cli

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_have_the_expected_options():
    assert options("arch") == ["inception_resnet_v1", "mobilefacenet", "resnet50"]
    assert options("loss") == ["contrastive", "triplet"]
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
    assert model.backbone.spec.name == arch and dm.spec == model.backbone.spec
    assert type(model).__name__ == {"contrastive": "ContrastiveModule", "triplet": "TripletModule"}[loss]
    assert model.margin == cfg.margin == 0.5


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
    assert cfg.arch.name and cfg.loss._target_


def test_scheduler_none_is_none(cfg_factory):
    assert instantiate_optional(cfg_factory("scheduler=none").get("scheduler")) is None


def test_margin_is_one_value_read_by_either_loss(cfg_factory):
    for loss in ("contrastive", "triplet"):
        cfg = cfg_factory(f"loss={loss}", "margin=1.7", "arch=mobilefacenet")
        assert build(cfg)[0].margin == 1.7


def test_wrong_option_lists_valid_ones():
    r = run_cli(["-m", "facematch.train", "arch=vgg16"])
    assert r.returncode != 0
    assert "Could not find 'arch/vgg16'" in r.stderr
    for name in ("inception_resnet_v1", "mobilefacenet", "resnet50"):
        assert name in r.stderr
    assert "Traceback" not in r.stderr

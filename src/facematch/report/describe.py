"""The configuration columns of a report row, from a run's saved Hydra config: which data, backbone, weights,
loss (and whether it reads the margin), optimizer, scheduler and batches."""

from __future__ import annotations

from pathlib import Path

from facematch.report.runs import batches

WEIGHT_NAMES = {"mobilefacenet_casia": "CASIA-WebFace", "vggface2": "VGGFace2", "casia-webface": "CASIA-WebFace"}


def _short(target: str | None) -> str:
    return target.rsplit(".", 1)[-1] if target else "—"


def _pretrained(arch: dict) -> str:
    src = str(arch.get("weights") or arch.get("pretrained") or "")
    if not src:
        return "none (random init)"
    for key, name in WEIGHT_NAMES.items():
        if key in Path(src).name.lower() or key == src:
            return name
    return Path(src).name


def _data(cfg: dict) -> str:
    """Which images a row was scored on: the data root's name, and whether facematch aligned them itself."""
    data = cfg.get("data") or {}
    name = Path(str(data.get("root") or "?")).name
    mode = (data.get("preprocess") or {}).get("mode")
    # raw photos are detected and aligned before scoring (embed.align_raw); runs written before the
    # embed group existed: facematch-eval aligned (eval.align_raw), per-fold scoring used centre crops
    old_default = (cfg.get("eval") or {}).get("align_raw", True) if cfg.get("task_name") == "eval" else False
    if mode == "center" and (cfg.get("embed") or {}).get("align_raw", old_default):
        mode = "align"
    from facematch.data.degrade import Degradation, degrade_side

    degrade = Degradation.from_config(data.get("degrade"))
    originals = degrade is not None and (data.get("features") or {}).get("originals")  # trained on both
    one_side = degrade is not None and degrade_side(data.get("degrade")) == "second"  # the cross-quality protocol
    return (name + {"align": " (own alignment)", "center": " (centre crop)"}.get(mode, "")
            + (f" @ {degrade.name()}" if degrade is not None else "") + (" (2nd image only)" if one_side else "")
            + (" + originals" if originals else ""))


def _arch(arch: dict, trained: bool) -> str:
    """The backbone and what of it trained: frozen (head only), the last N stages, or all of it (full)."""
    name = str(arch.get("name", "?"))
    if not trained:
        return name
    if not arch.get("freeze"):
        return f"{name} (full)"
    n = int(arch.get("unfreeze_last") or 0)
    return f"{name} (frozen)" if n == 0 else f"{name} (last {n})"


def reads_margin(cfg: dict) -> bool:
    """Whether the run's loss reads the top-level margin, as its loss config declares it (``margin_unit``: a
    unit, or null); a run saved before the declaration: whether its loss node takes a ``margin``."""
    if "margin_unit" in cfg:
        return cfg["margin_unit"] is not None
    return "margin" in (cfg.get("loss") or {})


def describe(cfg: dict, run: Path) -> dict:
    """The table's configuration columns, from a run's resolved Hydra config (and, for the batches, what the
    run in folder ``run`` recorded)."""
    arch = cfg.get("arch") or {}
    trained = bool(cfg.get("loss")) and cfg.get("task_name") != "eval"
    # the option names the loss and miner configs record (conf/loss/*.yaml, conf/miner/*.yaml)
    loss_name = str(cfg.get("loss_name") or "—")
    if cfg.get("miner_name") not in (None, "none"):
        loss_name += f" ({cfg['miner_name']})"
    weights = (cfg.get("distill_loss") or {}).get("weights") or {}
    if weights:  # distill=term: the distillation term beside the loss, with its weights where not 1
        w_main, w_dist = float(weights.get("main", 1.0)), float(weights.get("distill", 1.0))
        loss_name = (f"{w_main:g} x " if w_main != 1 else "") + loss_name + " + " + \
            (f"{w_dist:g} x " if w_dist != 1 else "") + "distill"
    sched = cfg.get("scheduler") or {}
    return {
        "exp": cfg.get("exp_name") or cfg.get("task_name") or "?",
        "data": _data(cfg),
        "arch": _arch(arch, trained),
        "pretrained on": _pretrained(arch),
        "loss": loss_name if trained else "— (no training)",
        # the top-level margin, where the loss reads it (its config declares margin_unit; distillation has none)
        "margin": f"{cfg.get('margin')}" if trained and reads_margin(cfg) else "—",
        "optimizer": _optimizer(cfg.get("optimizer") or {}) if trained else "—",
        "scheduler": (_short(sched.get("_target_")) if sched else "none") if trained else "—",
        "batches": batches(cfg, run) if trained else "—",
    }


def _optimizer(opt: dict) -> str:
    """``Adam lr=0.001``, and the weight decay where it is not zero."""
    wd = float(opt.get("weight_decay") or 0)
    return f"{_short(opt.get('_target_'))} lr={opt.get('lr')}" + (f" wd={wd:g}" if wd else "")

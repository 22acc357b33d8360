"""What a training run's folder and config say about how it was fed, beside its metrics: the images it drew
(per epoch x epochs run), its learning curve, the machine it ran on, and the layout of its batches."""

from __future__ import annotations

import json
from pathlib import Path

# data.batches classes (facematch.data.batches) -> what one row of a batch holds
_ROWS = {"ImageBatches": "images", "PairBatches": "pairs", "TripletBatches": "triplets"}


def training_budget(run: Path, cfg: dict) -> dict:
    """``images_seen`` (images drawn per epoch x epochs run) and ``val_auc`` (the validation AUC per
    epoch, from before training where the run validated first)."""
    out = {}
    train = _train_metrics(run)
    per_epoch = (cfg.get("data") or {}).get("train_samples")
    if train and per_epoch:
        out["images_seen"] = int(per_epoch) * int(train.get("epochs") or 0)
    curves = run / "learning_curves.json"
    if curves.is_file():
        out["val_auc"] = [e["val/auc"] for e in json.loads(curves.read_text()) if "val/auc" in e]
    return out


def machine(run: Path, metrics: dict) -> dict | None:
    """The machine block (CPU model and flags, GPU) a run recorded: in its metrics.json, or for a training
    job in its train_metrics.json."""
    return metrics.get("machine") or _train_metrics(run).get("machine")


def batches(cfg: dict, run: Path) -> str:
    """A training run's batches: ``P x K 8 x 2`` (people x photos, for a miner) or ``16 images`` (the batch
    size and what a row holds), then what varied the images: ``, 2 cached views`` where the run recorded the
    frozen-trunk fast path (which replaces ``data.augment``), else ``, augmented`` where train-time
    augmentation was on; "—" for a config written before ``data.batches`` existed."""
    data = cfg.get("data") or {}
    kind = str((data.get("batches") or {}).get("_target_") or "").rsplit(".", 1)[-1]
    if not kind:
        return "—"
    if kind == "PKBatches":
        pk = data.get("pk") or {}
        text = f"P x K {pk.get('p')} x {pk.get('k')}"
    else:
        text = f"{data.get('batch_size')} {_ROWS.get(kind, 'rows')}"
    features = (_train_metrics(run).get("data") or {}).get("features")
    if features:
        return text + f", {features.get('views')} cached views"
    return text + (", augmented" if (data.get("augment") or {}).get("enabled") else "")


def _train_metrics(run: Path) -> dict:
    """A training job's ``train_metrics.json`` (what it recorded of its data, epochs and machine), or {}."""
    path = run / "train_metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}

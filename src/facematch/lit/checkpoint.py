"""The checkpoint callback of every run (``conf/callbacks/default.yaml``): Lightning's ``ModelCheckpoint``,
keeping the best checkpoint over the whole run when a run is resumed (``ckpt_path=``) into a new run folder.

Lightning restores only ``best_model_path`` when the checkpoint folder changed, not the best score, so the
first epoch after resuming would become the "best" checkpoint even when an earlier epoch scored better.
Here the earlier best checkpoints are copied into the new folder and their scores restored: the resumed
run compares its epochs with them, and a run folder holds the checkpoint every figure is read from.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from facematch.utils.io import atomic_write

log = logging.getLogger(__name__)


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose best checkpoints and scores survive a resume into another folder."""

    def _generate_state_key(self, **kwargs: Any) -> str:
        # ModelCheckpoint's key: checkpoints written with either class restore into the other
        return f"{ModelCheckpoint.__qualname__}{kwargs!r}"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath", self.dirpath)
        if old_dir == self.dirpath:  # resumed in place: Lightning restores everything
            return super().load_state_dict(state_dict)
        self.best_model_path = state_dict.get("best_model_path", "")  # what Lightning keeps from another folder
        if self.monitor is None:  # e.g. last.ckpt: nothing to compare with; the next epoch writes its own
            return
        kept = {path: score for path, score in (state_dict.get("best_k_models") or {}).items() if Path(path).is_file()}
        if not kept:
            if state_dict.get("best_model_score") is not None:
                log.warning("the best checkpoint of the resumed run (%s) is gone: the best is taken over the epochs "
                            "from here on", self.best_model_path or "?")
            return
        self.best_k_models = {self._copy_here(path): score for path, score in kept.items()}
        ranked = sorted(self.best_k_models, key=self._rank)
        self.best_model_path, self.kth_best_model_path = ranked[0], ranked[-1]
        self.best_model_score = self.best_k_models[self.best_model_path]
        self.kth_value = self.best_k_models[self.kth_best_model_path]
        log.info("resumed: best checkpoint so far %s (%s %.6g), copied from %s", self.best_model_path, self.monitor,
                 float(self.best_model_score), old_dir)

    def _rank(self, path: str) -> float:
        """Smaller is better."""
        score = float(self.best_k_models[path])
        return -score if self.mode == "max" else score

    def _copy_here(self, path: str) -> str:
        target = Path(self.dirpath) / Path(path).name
        with open(path, "rb") as src:
            atomic_write(target, lambda fh: shutil.copyfileobj(src, fh))
        return str(target)

"""Evaluation entry point: ``python -m facematch.eval`` / ``facematch-eval`` (compose -> evaluate).

    facematch-eval arch=mobilefacenet arch.weights=W data=lfw_aligned112 data.root=D/lfw-aligned-112 \
        data.pairs=D/lfw/pairs.txt hydra.run.dir=OUT
    facematch-eval ckpt_path=outputs/runs/train/.../checkpoints/last.ckpt data=lfw_photos

Sharded across processes (each embeds part of the images; the metrics are those of one process; rank 0
writes the outputs; give every rank the same ``hydra.run.dir``)::

    torchrun --nproc-per-node=2 -m facematch.eval.run arch=mobilefacenet arch.weights=W data=lfw_aligned112 \
        data.root=D/lfw-aligned-112 data.pairs=D/lfw/pairs.txt hydra.run.dir=OUT

The work is in :mod:`facematch.eval.job`; see ``conf/eval.yaml`` for every option.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from facematch.config import check_overrides, config_dir
from facematch.errors import run_or_exit
from facematch.utils.allocator import tune as tune_allocator


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def hydra_main(cfg: DictConfig) -> float | None:
    from facematch.eval.job import evaluate

    return run_or_exit(evaluate, cfg).get("accuracy_mean")


def main() -> None:
    """``facematch-eval``: a renamed key or option on the command line is one line naming the new one."""
    tune_allocator()
    run_or_exit(check_overrides, sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()

"""``facematch-eval eval.quality.enabled=true``: the quality experiment (:mod:`.experiment`) run by the
evaluation job on its model, crops and pairs. Writes, into the run's folder, ``quality_discard.json`` (the
curves, the area-under-curve table, the default threshold: facematch-report's source for the docs) and
``quality_discard_fmr<F>.png`` per FMR; and the model's quality document (:mod:`.store`: the shipped fold's
head and the default threshold) to ``<cache>/qualities/<sha256>.json``, where the practitioner tools find it.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from facematch.config import write_json
from facematch.paths import cache_dir
from facematch.quality.experiment import QualitySettings, run_quality
from facematch.quality.plots import discard_plot
from facematch.quality.store import QualityModel, write_quality
from facematch.utils.hardware import machine_info

log = logging.getLogger(__name__)

RULE = ("the learned pair quality at the middle of the highest-quality run of {window} consecutive genuine "
        "comparisons (sorted by pair quality) of the mixed-quality LFW pairs that is at least half false "
        "non-matches at FMR {fmr:g}, the threshold fixed on the full set")


def quality_report(node, model, source, pairs, pairs_file: str, out_dir: Path, *, plots: bool = True) -> dict:
    """Run the experiment with ``node`` (``eval.quality``) settings; the summary that metrics.json keeps."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    settings = QualitySettings.from_config({k: v for k, v in plain.items() if k != "enabled"})
    r = run_quality(model, source, pairs, settings, cache_dir=cache_dir())
    heads, shipped = r.pop("heads"), r.pop("shipped")
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    d = r["default"]
    rule = RULE.format(fmr=d["fmr"], window=d["window"])
    qm = QualityModel(model.fingerprint, shipped, d["threshold"], rule, "learned",
                      {"arch": model.spec.name, "feature": "plain view, before normalisation"},
                      {"pairs": pairs_file, "preprocess": source.key,
                       **shipped.trained_on, "discard_fraction": d["fraction"]}, created)
    r.update(kind="facematch-quality", fingerprint=model.fingerprint, arch=model.spec.name,
             preprocess=source.key, command=" ".join(shlex.quote(a) for a in sys.argv), machine=machine_info(),
             created=created, folds={str(k): h.trained_on for k, h in heads.items()})
    r["rule"] = rule
    write_json(out_dir / "quality_discard.json", r)
    doc = write_quality(qm)
    t0 = time.perf_counter()
    figures = []
    for fmr in settings.fmrs if plots else ():
        figures.append(str(out_dir / f"quality_discard_fmr{fmr:g}.png"))
        discard_plot(r, fmr, figures[-1])
    log.info("quality: %s; plots in %.1f s", doc, time.perf_counter() - t0)
    return {"rows": r["rows"], "default": d, "document": str(doc), "plots": figures, "seconds": r["seconds"]}

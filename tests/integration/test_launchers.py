"""A two-job margin multirun run in parallel by the local joblib launcher (launcher=local), from the
command line: two job folders, each job in its own process, the two at the same time, each torch on its
share of the cores. The SLURM launchers are checked by composition and by their sbatch script
(tests/unit/test_launchers.py): no cluster here."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.helpers import FAST, run_cli

# every log line of a job names its process
LOG_FORMAT = "hydra.job_logging.formatters.simple.format='[%(asctime)s][pid %(process)d][%(name)s] - %(message)s'"


@pytest.mark.slow
@pytest.mark.usefixtures("data_dir")
def test_local_launcher_runs_two_jobs_at_once(tmp_path, mfn_weights):
    import joblib

    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "facematch.train", "-m", "launcher=local", "launcher_jobs=2", "margin=0.5,0.7",
                 "arch=mobilefacenet", f"arch.weights={mfn_weights}", "arch.freeze=true", "trainer.fast_dev_run=true",
                 "logger=csv", "callbacks=none", "test=false", *FAST, f"hydra.sweep.dir={sweep}", LOG_FORMAT])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in r.stdout + r.stderr
    runs = [sweep / "0", sweep / "1"]
    spans, pids = [], set()
    for run, margin in zip(runs, (0.5, 0.7)):
        assert f"margin={margin}" in (run / ".hydra" / "overrides.yaml").read_text()
        summary = json.loads((run / "train_metrics.json").read_text())
        assert 0.0 <= summary["val/auc"] <= 1.0
        # loky starts each worker with OMP_NUM_THREADS = cores // n_jobs (unless the shell set it already)
        expected = int(os.environ.get("OMP_NUM_THREADS") or max(1, joblib.cpu_count() // 2))
        assert summary["machine"]["cpu"]["torch_threads"] == expected
        # a job starts when Hydra writes its .hydra/config.yaml and ends when train_metrics.json is written
        spans.append(((run / ".hydra" / "config.yaml").stat().st_mtime, (run / "train_metrics.json").stat().st_mtime))
        job_pids = set(re.findall(r"\[pid (\d+)\]", (run / "train.log").read_text()))
        assert len(job_pids) == 1, job_pids
        pids |= job_pids
    assert len(pids) == 2  # two processes ...
    (start0, end0), (start1, end1) = spans
    assert start0 < end1 and start1 < end0, spans  # ... running at the same time

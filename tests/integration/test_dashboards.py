"""TensorBoard dashboards of a margin sweep on a small real LFW subset, read back with TensorBoard's own loaders
(the event multiplexer and accumulator, the HParams plugin's metadata, the projector's config): one HParams
session per job with its margin and its metrics.json result, the validation ROC and score histogram per
validation epoch, the held-out fold's projector with face sprites, and the summaries naming the sweep folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from facematch.eval.metrics import metrics_at_threshold, roc_auc, val_at_far
from tests.helpers import FAST, mini_pairs

MARGINS = (0.2, 0.5, 1.0)


def _argv(pairs: Path, tmp: Path, mfn_weights: Path) -> list[str]:
    return [f"arch.weights={mfn_weights}", "arch=mobilefacenet", "arch.freeze=true", "loss=triplet", "data=lfw_aligned112",
            f"data.pairs={pairs}", "data.test_fold=1", "trainer.max_epochs=2", "test=false", *FAST,
            f"paths.cache_dir={tmp}/cache", "embed.num_workers=0", "embed.progress=false"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, data_dir, mfn_weights) -> tuple[Path, str]:
    """A 3-value margin multirun of the README's main command (frozen MobileFaceNet, triplet loss, aligned
    crops), 2 epochs on 40 people, fold 1 of a 24-pair file scored; the sweep folder and what it printed."""
    import facematch.train

    tmp = tmp_path_factory.mktemp("dashboards")
    pairs = mini_pairs(data_dir, tmp / "pairs.txt")
    argv = ["facematch-train", "-m", f"margin={','.join(map(str, MARGINS))}", *_argv(pairs, tmp, mfn_weights),
            f"hydra.sweep.dir={tmp}/sweep"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        out = _captured(facematch.train.main)
    return tmp / "sweep", out


def _captured(fn) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fn()
    return buf.getvalue()


def _accumulator(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0}).Reload()


@pytest.mark.slow
def test_sweep_folder_holds_one_hparams_session_per_job(sweep):
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import metadata

    folder, _ = sweep
    mux = EventMultiplexer().AddRunsFromDirectory(str(folder))
    mux.Reload()
    sessions = {run: metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
                for run, tags in mux.PluginRunToTagToContent(metadata.PLUGIN_NAME).items()
                if metadata.SESSION_START_INFO_TAG in tags}
    assert sorted(sessions) == [f"{job}/tensorboard" for job in range(3)]
    for job, margin in enumerate(MARGINS):
        hp = sessions[f"{job}/tensorboard"].hparams
        assert hp["margin"].number_value == pytest.approx(margin)
        assert (hp["loss"].string_value, hp["arch"].string_value, hp["data"].string_value) == \
            ("triplet", "mobilefacenet", "lfw_aligned112")
        assert hp["arch.freeze"].string_value == "true" and hp["trainer.max_epochs"].number_value == 2  # overrides
        assert hp["optimizer"].string_value == "adam" and hp["optimizer.lr"].number_value > 0
        assert hp["data.test_fold"].number_value == 1 and "hydra.sweep.dir" not in hp


@pytest.mark.slow
def test_each_session_reports_its_metrics_json(sweep):
    from tensorboard.plugins.hparams import metadata

    folder, _ = sweep
    for job in range(3):
        m = json.loads((folder / str(job) / "metrics.json").read_text())
        acc = _accumulator(folder / str(job) / "tensorboard")
        content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
        tags = {info.name.tag for info in experiment.metric_infos}
        assert {"result/fold_accuracy", "result/auc", "result/val_at_far_1e-3", "result/val_at_far_1e-2",
                "result/accuracy_at_threshold", "result/f1_at_threshold", "result/best_val_auc"} <= tags

        def last(tag):
            return acc.Scalars(tag)[-1].value

        fixed = metrics_at_threshold(m["fold_scores"], m["fold_same"], 0.6)
        assert last("result/fold_accuracy") == pytest.approx(m["fold_accuracy"], abs=1e-6)
        assert last("result/auc") == pytest.approx(roc_auc(m["fold_protocol_scores"], m["fold_same"]), abs=1e-6)
        assert last("result/val_at_far_1e-2") == pytest.approx(
            val_at_far(m["fold_protocol_scores"], m["fold_same"], 1e-2)["val"], abs=1e-6)
        assert last("result/accuracy_at_threshold") == pytest.approx(fixed["accuracy"], abs=1e-6)
        assert last("result/f1_at_threshold") == pytest.approx(fixed["f1"], abs=1e-6)
        assert last("result/best_val_auc") == pytest.approx(m["train_metrics"]["best/val/auc"], abs=1e-6)


@pytest.mark.slow
def test_roc_and_histogram_images_every_validation_epoch_and_a_projector_with_sprites(sweep):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    folder, _ = sweep
    log_dir = folder / "0" / "tensorboard"
    acc = _accumulator(log_dir)
    epochs = [s.step for s in acc.Scalars("val/auc")]
    assert len(epochs) == 2  # two validation epochs
    for tag in ("val/roc", "val/score_histogram"):
        images = acc.Images(tag)
        assert [i.step for i in images] == epochs
        assert all((i.width, i.height) == (320, 240) and i.encoded_image_string[:4] == b"\x89PNG" for i in images)
    config = text_format.Parse((log_dir / "projector_config.pbtxt").read_text(), ProjectorConfig())
    (embedding,) = config.embeddings
    sprite = log_dir / embedding.sprite.image_path
    assert sprite.is_file() and list(embedding.sprite.single_image_dim) == [32, 32]
    names = (log_dir / embedding.metadata_path).read_text().splitlines()
    rows = (log_dir / embedding.tensor_path).read_text().splitlines()
    assert len(names) == len(rows) >= 2 and len(set(names)) >= 2  # the held-out fold's people, by name
    from PIL import Image

    side = Image.open(sprite).size[0]
    assert side % 32 == 0 and (side // 32) ** 2 >= len(rows)  # one 32 px face per embedding


@pytest.mark.slow
def test_job_and_sweep_summaries_name_the_sweep_folder(sweep):
    folder, out = sweep
    assert out.count(f"(every run of the sweep: tensorboard --logdir {folder})") == 3
    tail = out[out.index(f"Sweep: 3 jobs in {folder}"):].splitlines()
    for job, margin in enumerate(MARGINS):
        m = json.loads((folder / str(job) / "metrics.json").read_text())
        assert f"  {job}  fold 1 accuracy {m['fold_accuracy']:.4f}   (margin={margin})" in tail
    assert f"  TensorBoard, every job (HParams tab: side by side): tensorboard --logdir {folder}" in tail


@pytest.mark.slow
def test_a_resumed_run_logs_its_own_session_with_its_result(sweep, cfg_factory, mfn_weights):
    """Resuming job 0 for a third epoch: the resumed run's HParams session names the checkpoint it continued
    and reports its own metrics.json; its images are the third epoch's."""
    from tensorboard.plugins.hparams import metadata

    folder, _ = sweep
    last = folder / "0" / "checkpoints" / "last.ckpt"
    cfg = cfg_factory(*_argv(folder.parent / "pairs.txt", folder.parent, mfn_weights), "margin=0.2",
                      "trainer.max_epochs=3", f"ckpt_path={last}", out="resumed")
    from facematch.train import train

    train(cfg)
    out = Path(cfg.paths.output_dir)
    m = json.loads((out / "metrics.json").read_text())
    acc = _accumulator(out / "tensorboard")
    hp = metadata.parse_session_start_info_plugin_data(
        acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]).hparams
    assert hp["ckpt_path"].string_value == str(last) and hp["margin"].number_value == pytest.approx(0.2)
    assert acc.Scalars("result/fold_accuracy")[-1].value == pytest.approx(m["fold_accuracy"], abs=1e-6)
    assert [i.step for i in acc.Images("val/roc")] == [s.step for s in acc.Scalars("val/auc")] and \
        len(acc.Images("val/roc")) == 1  # the one epoch it trained

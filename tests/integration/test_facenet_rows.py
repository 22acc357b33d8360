"""The FaceNet rows and the design command on real data: the closed-set split, one training step of
seed2_facenet on the VGGFace2 samples, and the bare ``facematch-train loss=triplet optimizer=sgd`` (the first
original project's frozen VGGFace2 Inception-ResNet-v1): its composed config, its one offline line, and a
head-only step from a facenet-pytorch state dict on disk."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from facematch.data.pair_files import fold_identities, identity_of, read_lfw_pairs
from facematch.config import instantiate_node
from facematch.train import build, train
from tests.helpers import FAST, error_line, mobilefacenet_spec, run_cli


@pytest.mark.usefixtures("data_dir")
def test_closed_set_split_is_by_image_among_the_people_with_most(cfg_factory):
    cfg = cfg_factory("experiment=seed2_facenet_cpu", "data.top_identities=12")
    dm = instantiate_node(cfg.data, _partial_=True, _convert_="all")(spec=mobilefacenet_spec())
    dm.setup("fit")
    (pool, pool_labels), (val, val_labels) = dm.template_sets()
    people = {identity_of(p) for p in pool}
    test_people = fold_identities(read_lfw_pairs(cfg.data.pairs), 0)
    assert len(people) == 12 and {identity_of(p) for p in val} <= people and not set(pool) & set(val)
    assert not people & test_people  # fold 0's people are the test
    counts = {i: len(v) for i, v in dm._base_index().without(test_people).images.items()}
    assert min(counts[i] for i in people) >= max(c for i, c in counts.items() if i not in people)
    assert all(len([p for p in pool if identity_of(p) == i]) == int(0.8 * counts[i]) for i in people)
    label_of = {identity_of(p): y for p, y in zip(pool, pool_labels)}
    assert len(set(label_of.values())) == 12 and all(label_of[identity_of(p)] == y for p, y in zip(val, val_labels))


@pytest.mark.usefixtures("data_dir")
def test_seed2_facenet_trains_one_step_on_vggface2_samples(cfg_factory, data_dir):
    """The VGGFace2 row as configured (ResNet-50 at 224 with the flattened 2048x7x7 map, radius-10 head,
    top-k of random triplets, closed-set template accuracy), random weights in place of ImageNet's, on the
    three sample people, with small batches."""
    cfg = cfg_factory("experiment=seed2_facenet", "arch.pretrained=null", f"data.root={data_dir}/vggface2-samples/tight_crop",
                      "data.batch_size=2", "miner.k=2", "data.train_samples=2", "data.batches.per_class=0",
                      "data.val_pairs=2", "data.num_workers=0", "callbacks.template_accuracy.n_probes=2",
                      "callbacks.template_accuracy.per_class=2",
                      "~callbacks.model_checkpoint", "~callbacks.last_checkpoint",  # no 1.5 GB checkpoints
                      "trainer.fast_dev_run=true", "logger=csv")
    assert (cfg.arch.name, cfg.arch.template, cfg.arch.pool, cfg.head.hidden, cfg.head.scale) == \
        ("resnet50", "box_224x224", False, 1024, 10.0)  # 2048 x 7 x 7 -> 1024 -> 128, radius 10
    assert cfg.miner._target_.endswith("TopKTripletMiner") and cfg.loss.distance.normalize_embeddings is False
    # the step itself at 64x64 (a 2048x2x2 map): the same code path at a twelfth of the 224 cost, and an 8M-
    # rather than a 100M-parameter head, so that the suite stays within its CI time
    small = cfg_factory("experiment=seed2_facenet", "arch.pretrained=null", "arch.template=box_64x64",
                        f"data.root={data_dir}/vggface2-samples/tight_crop", "data.batch_size=2", "miner.k=2",
                        "data.train_samples=2", "data.batches.per_class=0", "data.val_pairs=2", "data.num_workers=0",
                        "callbacks.template_accuracy.n_probes=2", "callbacks.template_accuracy.per_class=2",
                        "~callbacks.model_checkpoint", "~callbacks.last_checkpoint", "trainer.fast_dev_run=true",
                        "logger=csv", out="small")
    metrics = train(small)
    assert torch.isfinite(torch.tensor(metrics["train/loss_step"]))
    assert 0.0 <= metrics["val/template_rank_1"] <= metrics["val/template_rank_5"] <= 1.0


def test_design_command_composes_to_the_first_original(cfg_factory):
    cfg = cfg_factory("loss=triplet", "optimizer=sgd")
    assert (cfg.arch.name, cfg.arch.pretrained, cfg.arch.freeze, cfg.arch.weights) == \
        ("inception_resnet_v1", "vggface2", True, None)
    assert cfg.loss_name == "triplet" and cfg.optimizer._target_ == "torch.optim.SGD"
    assert cfg_factory("arch=inception_resnet_v1", out="random").arch.pretrained is None  # one override away


def test_design_command_offline_is_one_line_before_any_work(tmp_path):
    start = time.perf_counter()
    r = run_cli(["-m", "facematch.train", "loss=triplet", "optimizer=sgd", f"hydra.run.dir={tmp_path}/run"],
                env={"TORCH_HOME": str(tmp_path / "torch")}, timeout=120)
    assert r.returncode != 0
    line = error_line(r.stderr)
    assert "arch.weights=FILE" in line and "facematch-train arch=mobilefacenet" in line
    assert "lightning" not in r.stderr.lower() and time.perf_counter() - start < 60


@pytest.mark.usefixtures("data_dir")
def test_design_command_trains_only_the_head_from_a_weights_file(cfg_factory, tmp_path):
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    weights = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(InceptionResnetV1(pretrained=None, classify=False).state_dict(), weights)
    cfg = cfg_factory("loss=triplet", "optimizer=sgd", f"arch.weights={weights}", "data.features.enabled=false",
                      "trainer.fast_dev_run=true", "logger=csv",
                      "~callbacks.model_checkpoint", "~callbacks.last_checkpoint", *FAST,
                      "data.train_samples=4", "data.batch_size=4", "data.val_pairs=4")
    model, _ = build(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("net.head.") for n in trainable)
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss_step"]))


def test_original_lfw_test_embeds_every_image_of_the_people_with_three_or_more_unflipped(cfg_factory, data_dir,
                                                                                      mfn_weights):
    """``templates=folder`` (the seed-2 rows' setting) on real LFW photos: per-fold scoring's pool is every
    image under data.root of fold 0's people with 3+ images (here 12 of them), each embedded once without a
    flip, and its figure is ``Code/eval_model.py``'s on the model's own embeddings of those files."""
    import numpy as np

    from facematch.data.pair_files import read_pairs
    from facematch.embedding.embedder import normalize_batch
    from facematch.eval.inputs import engine_settings, eval_source
    from facematch.eval.nearest_template import draw_probes, draw_templates
    from facematch.eval.template_pool import template_figures
    from facematch.models.loading import load_model

    assert cfg_factory("experiment=seed2_facenet_cpu").templates.pool == "folder"
    cfg = cfg_factory("templates=folder", "templates.n_probes=300", "arch=mobilefacenet",
                      f"arch.weights={mfn_weights}", "embed.align_raw=false", "embed.cache=false",
                      "embed.precision=fp32", "embed.runtime=eager", "embed.progress=false", config_name="eval")
    root = Path(cfg.data.root)
    fold0 = sorted(fold_identities(read_pairs(cfg.data.pairs, n_folds=10), 0))
    counts = {p: len(list((root / p).glob("*.jpg"))) for p in fold0}
    people = [p for p in fold0 if counts[p] < 3][:4] + [p for p in fold0 if 3 <= counts[p] <= 12][:12]
    model = load_model(None, cfg.arch)
    source = eval_source(cfg, model.spec.template)
    res = template_figures(cfg, model, source, engine_settings(cfg), np.zeros((0, 1)), [], "concat", people=people)
    kept = sorted(p for p in people if counts[p] >= 3)
    assert (res["pool"], res["flip"], res["n_templates"]) == ("folder", "none", 12)
    assert res["n_images"] == sum(counts[p] for p in kept)  # all their images, not only the pairs file's
    # by hand: each file through the model once (no mirror), the original's templates and argmin
    rels = [f"{p}/{f.name}" for p in kept for f in sorted((root / p).glob("*.jpg"))]
    with torch.no_grad():
        emb = model.module.eval()(normalize_batch(np.stack([source(r) for r in rels]), model.spec)).numpy()
    emb = 10 * emb / np.linalg.norm(emb, axis=1, keepdims=True)  # the FaceNet head's output scale
    labels = np.array([identity_of(r) for r in rels])
    classes, picks = draw_templates(labels, 5, int(cfg.seed))
    probes = draw_probes(labels, 300, int(cfg.seed) + 1)
    templates = np.stack([emb[row].mean(0) for row in picks])
    nearest = classes[np.argmin(np.linalg.norm(emb[probes][:, None] - templates[None], axis=2), axis=1)]
    assert res["template_rank_1"] == pytest.approx(np.mean(nearest == labels[probes]), abs=1 / 300)
    assert res["template_rank_1"] > 0.3  # chance: 1 / 12
    in_own = [p in picks[np.searchsorted(classes, labels[p])] for p in probes]
    assert res["probes_in_own_template"] == pytest.approx(np.mean(in_own))


class _Logged(torch.nn.Module):
    """What TemplateAccuracy needs of a LightningModule: forward, device, training mode, log_dict."""

    def __init__(self, net):
        super().__init__()
        self.net, self.logged, self.device = net, {}, torch.device("cpu")

    def forward(self, x):
        return self.net(x)

    def log_dict(self, values, **_):
        self.logged.update(values)


def test_closed_set_template_accuracy_equals_brute_force(cfg_factory, mfn_weights):
    """The validation figure of the seed-2 rows (callbacks.template_accuracy) against eval_model.py's
    computation done by hand: every drawn image embedded one by one in eval mode, templates and truth by
    person name (not by the label map), argmin of Euclidean distances. The module is handed over in train mode:
    the callback must embed in eval mode itself. A good model (MobileFaceNet, CASIA-WebFace) scores high on a
    closed set, so a low figure is the model's, not the metric's."""
    import numpy as np
    from types import SimpleNamespace

    from facematch.embedding.embedder import normalize_batch
    from facematch.eval.nearest_template import draw_probes, draw_templates
    from facematch.models.loading import load_model

    cfg = cfg_factory("experiment=seed2_facenet_cpu", "data.top_identities=12",
                      "callbacks.template_accuracy.n_probes=100")
    model = load_model(None, {"name": "mobilefacenet", "weights": str(mfn_weights)})
    dm = instantiate_node(cfg.data, _partial_=True, _convert_="all")(spec=model.spec)
    dm.setup("fit")
    module = _Logged(model.module).train()
    callback = instantiate_node(cfg.callbacks.template_accuracy)
    callback.on_validation_epoch_end(SimpleNamespace(sanity_checking=False, datamodule=dm), module)
    assert module.training  # left as it was handed over
    (pool, pool_labels), (val, val_labels) = dm.template_sets()
    _, picks = draw_templates(pool_labels, callback.per_class, callback.seed)
    probes = [val[i] for i in draw_probes(val_labels, callback.n_probes, callback.seed + 1)]
    net = model.module.eval()
    drawn = sorted({pool[i] for i in picks.flat} | set(probes))
    with torch.no_grad():  # eval mode: the batch does not change an image's embedding
        emb = dict(zip(drawn, net(normalize_batch(np.stack([dm.source(rel) for rel in drawn]), model.spec)).numpy()))
    unit = {rel: 10 * e / np.linalg.norm(e) for rel, e in emb.items()}  # the FaceNet head's output scale
    templates = {}
    for row in picks:
        names = {identity_of(pool[i]) for i in row}
        assert len(names) == 1  # a template is one person's
        templates[names.pop()] = np.mean([unit[pool[i]] for i in row], axis=0)
    names = sorted(templates)
    hits = sum(names[int(np.argmin([np.linalg.norm(unit[rel] - templates[n]) for n in names]))] == identity_of(rel)
               for rel in probes)
    assert not set(probes) & set(pool)  # no leak on the closed set: probes are validation images
    assert module.logged["val/template_rank_1"] == pytest.approx(hits / len(probes), abs=1 / len(probes))
    assert hits / len(probes) > 0.5  # chance: 1 / 12

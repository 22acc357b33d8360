"""The second original's LFW test (``templates=folder``: :mod:`facematch.eval.template_pool`) on synthetic
embeddings: the pool it takes, the figure against ``Code/eval_model.py``'s computation written out by loops,
and the leak it has (a probe among its own template's images)."""

from __future__ import annotations

import numpy as np
import pytest

from facematch.data.identities import IdentityIndex
from facematch.errors import FacematchError
from facematch.eval.nearest_template import draw_probes, draw_templates, template_report
from facematch.eval.template_pool import TemplateSettings, folder_pool, measure

FOLDER = TemplateSettings(pool="folder", flip="none")


def _index(counts: dict[str, int]) -> IdentityIndex:
    return IdentityIndex(root=None, images={p: [f"{p}/{p}_{j:04d}.jpg" for j in range(1, n + 1)]
                                            for p, n in counts.items()})


def _embedder(table: dict[str, np.ndarray], calls: list):
    def embed(rels, flip):
        calls.append((list(rels), flip))
        return np.stack([table[r] for r in rels]), list(rels)
    return embed


def _eval_model_py(emb, labels, picks, classes, probes):
    """``testValues`` as the original wrote it: each template the mean of its 5 (scaled, unnormalised) model
    outputs, each probe assigned by ``argmin`` of the Euclidean distances; accuracy = matches / probes."""
    templates = [np.mean([emb[i] for i in row], axis=0) for row in picks]
    matched = 0
    for p in probes:
        d = [np.sqrt(np.sum((emb[p] - t) ** 2)) for t in templates]
        matched += classes[int(np.argmin(d))] == labels[p]
    return matched / len(probes)


def _people(rng, n_people=40, dim=16, signal=1.2):
    counts = {f"P{i:03d}": int(c) for i, c in enumerate(rng.integers(1, 9, n_people))}
    index = _index(counts)
    centres = {p: rng.normal(size=dim) for p in counts}
    table = {}
    for p, rels in index.images.items():
        for r in rels:
            v = signal * centres[p] + rng.normal(size=dim)
            table[r] = 10 * v / np.linalg.norm(v)  # what head=facenet outputs: L2-normalised, times 10
    return counts, index, table


def test_folder_pool_is_every_image_of_the_people_with_three_or_more():
    index = _index({"a": 2, "b": 3, "c": 7, "d": 1, "e": 4})
    assert folder_pool(index, 3) == index.images["b"] + index.images["c"] + index.images["e"]
    assert folder_pool(index, 3, people={"a", "c", "x"}) == index.images["c"]


def test_original_lfw_test_equals_eval_model_py_by_loops():
    rng = np.random.default_rng(5)
    counts, index, table = _people(rng)
    calls: list = []
    res = measure(FOLDER, np.zeros((0, 1)), [], _embedder(table, calls), index, "concat", seed=11)
    # the pool: every image of every person with 3+, each embedded once, no flip (not the protocol's concat)
    [(rels, flip)] = calls
    assert flip == "none" and rels == folder_pool(index, 3)
    kept = sorted(p for p, n in counts.items() if n >= 3)
    assert res["n_templates"] == len(kept) and res["n_images"] == sum(counts[p] for p in kept) == len(rels)
    assert (res["pool"], res["flip"], res["n_probes"], res["per_class"]) == ("folder", "none", 2000, 5)
    # the same draws, the original's arithmetic
    labels = np.array([r.split("/")[0] for r in rels])
    emb = np.stack([table[r] for r in rels])
    classes, picks = draw_templates(labels, 5, 11)
    probes = draw_probes(labels, 2000, 12)
    assert list(classes) == kept and all((labels[row] == c).all() for c, row in zip(classes, picks))
    expected = _eval_model_py(emb, labels, picks, classes, probes)
    assert res["template_rank_1"] == pytest.approx(expected)
    assert 0.2 < expected < 0.95  # neither trivial nor hopeless: a test that can tell a wrong template apart


def test_the_leak_is_reproduced_probes_can_be_in_their_own_template():
    """People with exactly 3 images: the original draws the probe and the 5 template images from the same 3,
    so 1 - (2/3)^5 = 86.8 % of probes are averaged into their own template. Embeddings without any identity in
    them then score far above chance; the same draw with the probe's own image kept out scores chance."""
    rng = np.random.default_rng(0)
    index = _index({f"P{i:02d}": 3 for i in range(100)})
    table = {r: 10 * v / np.linalg.norm(v) for r, v in
             zip(folder_pool(index, 3), rng.normal(size=(300, 64)))}  # pure noise: no identity at all
    res = measure(FOLDER, np.zeros((0, 1)), [], _embedder(table, []), index, "none", seed=3)
    assert res["probes_in_own_template"] == pytest.approx(1 - (2 / 3) ** 5, abs=0.05)
    assert res["template_rank_1"] > 0.5  # chance is 1 / 100
    rels = folder_pool(index, 3)
    labels = np.array([r.split("/")[0] for r in rels])
    emb = np.stack([table[r] for r in rels])
    classes, picks = draw_templates(labels, 5, 3)
    probes = draw_probes(labels, 2000, 4)
    assert res["template_rank_1"] == pytest.approx(_eval_model_py(emb, labels, picks, classes, probes))
    # leak-free: each probe's own template drawn from its person's other images only
    templates, hits = np.stack([emb[row].mean(0) for row in picks]), 0
    for p in probes:
        c = int(np.searchsorted(classes, labels[p]))
        others = np.flatnonzero((labels == labels[p]) & (np.arange(len(labels)) != p))
        own = templates.copy()
        own[c] = emb[rng.choice(others, 5)].mean(0)
        hits += int(np.argmin(np.linalg.norm(emb[p] - own, axis=1)) == c)
    assert hits / len(probes) < 0.1


def test_pairs_pool_reuses_the_protocols_embeddings_among_the_people_given():
    rng = np.random.default_rng(2)
    paths = [f"{p}/{p}_{j:04d}.jpg" for p, n in (("a", 4), ("b", 3), ("c", 2), ("d", 5)) for j in range(n)]
    emb = rng.normal(size=(len(paths), 8))
    calls: list = []
    res = measure(TemplateSettings(), emb, paths, _embedder({}, calls), None, "concat", people={"a", "b", "c"},
                  seed=3)
    assert not calls and (res["pool"], res["flip"], res["n_templates"], res["n_images"]) == ("pairs", "concat", 2, 7)
    labels = np.array([p.split("/")[0] for p in paths])
    keep = np.isin(labels, ["a", "b"])
    assert res["template_rank_1"] == template_report(emb[keep], labels[keep], seed=3)["template_rank_1"]
    # another flip than the protocol's embeds the pairs' images again
    table = {p: e for p, e in zip(paths, emb)}
    res = measure(TemplateSettings(flip="none"), emb, paths, _embedder(table, calls), None, "concat", seed=3)
    assert calls[0][1] == "none" and res["flip"] == "none"


def test_no_person_with_enough_images_is_a_skip_not_a_crash():
    res = measure(FOLDER, np.zeros((0, 1)), [], _embedder({}, []), _index({"a": 2, "b": 1}), "none")
    assert "skipped" in res and res["pool"] == "folder"


@pytest.mark.parametrize("bad", [{"pool": "lfw"}, {"flip": "mirror"}, {"min_images": 1}, {"per_class": 0}])
def test_bad_settings_are_one_error(bad):
    with pytest.raises(FacematchError) as err:
        TemplateSettings(**bad)
    assert f"templates.{next(iter(bad))}=" in str(err.value) and "\n" not in str(err.value)


def test_folder_pool_on_a_bin_set_is_one_error_naming_the_fix(tmp_path):
    from omegaconf import OmegaConf

    from facematch.eval.template_pool import template_figures

    root = tmp_path / "lfw.bin"
    root.write_bytes(b"\0")
    cfg = OmegaConf.create({"templates": {"_target_": "facematch.eval.template_pool.TemplateSettings",
                                          "pool": "folder", "flip": "none"}, "data": {"root": str(root)}, "seed": 0})
    with pytest.raises(FacematchError) as err:
        template_figures(cfg, None, None, {}, np.zeros((0, 1)), [], "concat")
    assert str(root) in str(err.value) and "templates=pairs" in str(err.value) and "\n" not in str(err.value)

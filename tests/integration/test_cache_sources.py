"""Caches are tied to the source files they were made from (issue 10): two dataset folders with the same
relative paths never share an aligned crop or an embedding, and a changed source file is re-made, never
served stale. On real LFW photos: a colour copy and a grayscale copy of the few images a tiny pairs file
uses, through the cache classes and end to end through facematch-eval."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facematch.data.pair_files import read_pairs
from facematch.errors import DataNotFoundError, FacematchError
from facematch.embedding.cache import EmbeddingCache
from facematch.embedding.embedder import Embedder
from facematch.models.loading import build_arch_model
from facematch.faces.align import FaceAligner
from facematch.faces.crop_cache import AlignedCache, crop_path, read_record, record_stamp
from facematch.faces.prepare import prepare
from facematch.data.source import FaceSource
from facematch.utils.io import file_stamp
from tests.helpers import tiny_pairs

TEMPLATE = "sphereface_112x96"  # MobileFaceNet's template: what facematch-eval data=lfw_photos aligns to
REL = "Abdullah_Gul/Abdullah_Gul_0001.jpg"


def is_gray(crop: np.ndarray) -> bool:
    c = crop.astype(int)
    return max(np.abs(c[..., 0] - c[..., 1]).max(), np.abs(c[..., 1] - c[..., 2]).max()) <= 3


def save_gray(src: Path, dest: Path) -> None:
    """``src``'s pixels in grayscale (as RGB: LFW-a-like), written to ``dest`` as JPEG."""
    with Image.open(src) as im:
        gray = im.convert("L").convert("RGB")
    gray.save(dest, format="JPEG", quality=90)


def _cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def touch(path: Path) -> None:
    """Replace ``path`` by its grayscale version (new content) and move its mtime on by 2 s."""
    before = path.stat().st_mtime_ns
    save_gray(path, path)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


@pytest.fixture
def pairs(data_dir, tmp_path) -> Path:
    """8 pairs in 2 folds (13 distinct images of 11 people)."""
    return tiny_pairs(data_dir, tmp_path / "pairs.txt", per_class=2)


@pytest.fixture
def roots(lfw_root, pairs, tmp_path) -> tuple[Path, Path, list[str]]:
    """``(colour, gray, rels)``: two dataset folders with the same relative paths, different pixels."""
    rels = sorted({p for pair in read_pairs(pairs) for p in (pair.a, pair.b)})
    colour, gray = tmp_path / "colour", tmp_path / "gray"
    for rel in rels:
        for root in (colour, gray):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw_root / rel, colour / rel)
        save_gray(lfw_root / rel, gray / rel)
    return colour, gray, rels


# ---------------------------------------------------------------------------------------------------
# aligned crops


def test_two_roots_never_share_an_aligned_crop(roots, tmp_path):
    colour, gray, _ = roots
    cache_dir = tmp_path / "aligned"
    kw = {"select": "nearest_center"}
    from_gray = FaceSource(gray, TEMPLATE, mode="align", cache_dir=cache_dir, **kw)(REL)
    from_colour = FaceSource(colour, TEMPLATE, mode="align", cache_dir=cache_dir, **kw)(REL)
    assert is_gray(from_gray) and not is_gray(from_colour), "the colour root was served the grayscale crop"
    np.testing.assert_array_equal(from_colour, FaceAligner(TEMPLATE, **kw).align_path(colour / REL).image)
    folders = sorted(p.name for p in cache_dir.iterdir())
    assert len(folders) == 2 and all(f.startswith(TEMPLATE + "-") for f in folders)

    # the call: the folder the grayscale photos were aligned into, asked for the colour root's crop
    gray_folder = AlignedCache.under(cache_dir, TEMPLATE, gray, **kw).root
    with pytest.raises(FacematchError, match=r"holds crops of .*/gray, not .*/colour") as err:
        AlignedCache(gray_folder, TEMPLATE, colour, **kw).get(REL)
    assert "\n" not in str(err.value)


def test_a_changed_source_file_remakes_its_crop(roots, tmp_path):
    colour, _, rels = roots
    folder = tmp_path / "aligned"
    first = AlignedCache(folder, TEMPLATE, colour).get(REL)
    assert not is_gray(first)
    np.testing.assert_array_equal(AlignedCache(folder, TEMPLATE, colour).get(REL), first)  # served from disk

    touch(colour / REL)
    again = AlignedCache(folder, TEMPLATE, colour)
    remade = again.get(REL)
    assert is_gray(remade), "a crop of the file as it was before it changed was served"
    np.testing.assert_array_equal(remade, FaceAligner(TEMPLATE).align_path(colour / REL).image)
    assert record_stamp(again.record(REL)) == file_stamp(colour / REL)
    np.testing.assert_array_equal(again.get(REL), remade)  # and it is fresh now
    assert again.stats == {"stale_remade": 1, "made": 1, "served": 1}

    # prepare re-makes (and counts) a crop whose source changed, and skips the others
    others = [r for r in rels if r.startswith("Abdullah_Gul/")]
    prepare(colour, folder, TEMPLATE, others, workers=1, progress=False)
    touch(colour / others[1])
    m = prepare(colour, folder, TEMPLATE, others, workers=1, progress=False)
    c = m["counts"]
    assert c["made_this_run"] == 1 and c["stale_remade"] == 1 and c["already_done"] == len(others) - 1
    assert record_stamp(read_record(crop_path(folder, others[1]))) == file_stamp(colour / others[1])

    # a crop whose source file is gone is never served
    (colour / REL).unlink()
    with pytest.raises(DataNotFoundError, match="image not found"):
        AlignedCache(folder, TEMPLATE, colour).get(REL)


def test_old_format_aligned_cache_is_refused(roots, tmp_path):
    colour, _, _ = roots
    folder = tmp_path / "old"
    AlignedCache(folder, TEMPLATE, colour).get(REL)
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace("facematch-aligned-crops/2", "facematch-aligned-crops/1"))
    with pytest.raises(FacematchError, match=r"format 'facematch-aligned-crops/1'.*delete that folder") as err:
        AlignedCache(folder, TEMPLATE, colour).get(REL)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------
# embeddings and frozen features


@pytest.fixture(scope="module")
def mfn(mfn_weights):
    return build_arch_model("mobilefacenet", str(mfn_weights))


def embedder(mfn, source, cache_dir) -> Embedder:
    return Embedder(mfn.module, mfn.spec, source, num_workers=0, flip="none", cache_dir=cache_dir, progress=False)


def test_embeddings_are_tied_to_their_source_files(mfn, roots, tmp_path):
    colour, gray, rels = roots
    cache_dir = tmp_path / "emb"
    src_colour, src_gray = (FaceSource(r, TEMPLATE, mode="center") for r in (colour, gray))
    e_colour, paths = embedder(mfn, src_colour, cache_dir).embed(rels)
    g = embedder(mfn, src_gray, cache_dir)
    e_gray, _ = g.embed(rels)
    assert g.stats["computed"] == len(rels)  # nothing shared between the two roots
    assert not np.allclose(e_colour, e_gray, atol=1e-3)
    assert len(list(cache_dir.iterdir())) == 2

    touch(colour / REL)
    e = embedder(mfn, src_colour, cache_dir)
    again, _ = e.embed(rels)
    assert e.stats["computed"] == 1 and e.stats["stale"] == 1 and e.stats["cache_hits"] == len(rels) - 1
    i = paths.index(REL)
    fresh = Embedder(mfn.module, mfn.spec, flip="none").embed_arrays(src_colour(REL)[None])[0]
    np.testing.assert_allclose(again[i], fresh, rtol=1e-4, atol=1e-4)
    assert not np.allclose(again[i], e_colour[i], atol=1e-3)
    np.testing.assert_array_equal(np.delete(again, i, 0), np.delete(e_colour, i, 0))
    e2 = embedder(mfn, src_colour, cache_dir)
    e2.embed(rels)
    assert e2.stats["computed"] == 0 and e2.stats["stale"] == 0

    # a part without stamps (the older format) is never used
    cache = e2.cache
    for p in cache.parts():
        p.unlink()
    with open(cache.dir / "part-00000000000000000001-oldfmt00.npz", "wb") as fh:
        np.savez(fh, paths=np.asarray(rels, dtype=np.str_), emb=np.asarray(again, np.float32))
    e3 = embedder(mfn, src_colour, cache_dir)
    e3.embed(rels)
    assert e3.stats["old_format"] == len(rels) and e3.stats["computed"] == len(rels)


def test_frozen_features_follow_a_changed_source(mfn, roots, tmp_path):
    import copy

    from facematch.data.features import FeatureStore

    ENGINE = {"cache_dir": tmp_path / "cache" / "embeddings", "num_workers": 0, "progress": False}  # the embed group

    colour, _, rels = roots
    backbone = copy.deepcopy(mfn.module)
    backbone.freeze(0)  # the fast path's backbone: all of it frozen
    source = FaceSource(colour, TEMPLATE, mode="center")
    store = FeatureStore(backbone, source, ENGINE, views=2)
    before = store.stack(rels).numpy()
    touch(colour / REL)
    store = FeatureStore(backbone, source, ENGINE, views=2)
    after = store.stack(rels).numpy()
    stats = store.embedders[0].stats
    assert stats["computed"] == 1 and stats["stale"] == 1
    i = rels.index(REL)
    assert not np.allclose(after[i], before[i], atol=1e-3)
    np.testing.assert_array_equal(np.delete(after, i, 0), np.delete(before, i, 0))


# ---------------------------------------------------------------------------------------------------
# end to end: facematch-eval on two roots, one cache folder, then a changed photo


def test_eval_two_roots_one_cache_folder_then_a_changed_photo(cfg_factory, mfn_weights, roots, pairs, tmp_path):
    from facematch.eval.job import evaluate

    colour, gray, rels = roots

    def run(root: Path, name: str, cache: Path) -> tuple[dict, dict]:
        cfg = cfg_factory("arch=mobilefacenet", f"arch.weights={mfn_weights}", "data=lfw_photos", f"data.root={root}",
                          f"data.pairs={pairs}", f"paths.cache_dir={cache}", "embed.num_workers=0",
                          "embed.progress=false", "eval.plots=false", "eval.tensorboard=false",
                          "eval.identification=false", "eval.tsne_identities=0", config_name="eval", out=name)
        m = evaluate(cfg)
        emb = EmbeddingCache(cache / "embeddings", m["embedding_cache"]["key"]).load()
        return m, emb

    shared = tmp_path / "cache"
    m_gray, emb_gray = run(gray, "gray", shared)
    m_colour, emb_colour = run(colour, "colour", shared)
    m_ref, emb_ref = run(colour, "colour_fresh", tmp_path / "fresh")  # nothing cached: the true result
    assert m_gray["n_images"] == m_colour["n_images"] == len(rels)
    assert m_colour["embedding_cache"]["computed"] == len(rels)
    for rel in rels:  # the shared cache gave the colour run exactly what a fresh run computes
        np.testing.assert_allclose(emb_colour[rel], emb_ref[rel], rtol=1e-5, atol=1e-5)
        assert not np.allclose(emb_colour[rel], emb_gray[rel], atol=1e-3)
    for k in ("accuracy_mean", "auc", "eer", "best_f1_threshold"):
        assert m_colour[k] == pytest.approx(m_ref[k], abs=1e-6), k
    assert len(list((shared / "aligned").iterdir())) == 2  # one crop folder per source folder

    touch(colour / REL)
    m_touched, emb_touched = run(colour, "touched", shared)
    assert m_touched["embedding_cache"]["computed"] == 1 and m_touched["embedding_cache"]["stale"] == 1
    _, emb_touched_ref = run(colour, "touched_fresh", tmp_path / "fresh2")
    # re-made alone, while the fresh run detected it in a batch of photos: batched MTCNN moves landmarks by
    # up to ~5e-5 px (benchmarks/detection.py), which can flip a few crop pixels by one grey level
    assert _cos(emb_touched[REL], emb_touched_ref[REL]) > 0.9999
    assert _cos(emb_touched[REL], emb_colour[REL]) < 0.99  # the grayscale photo, not the old crop
    colour_crops = AlignedCache.under(shared / "aligned", TEMPLATE, colour, select="nearest_center")
    assert record_stamp(colour_crops.record(REL)) == file_stamp(colour / REL)  # the crop was re-made too


def test_frozen_features_with_originals_add_the_undegraded_views_after_the_degraded_ones(mfn, roots, tmp_path):
    import copy

    from facematch.data.degrade import Degradation
    from facematch.data.features import FeatureStore

    ENGINE = {"cache_dir": tmp_path / "cache" / "embeddings", "num_workers": 0, "progress": False}
    colour, _, rels = roots
    backbone = copy.deepcopy(mfn.module)
    backbone.freeze(0)
    degraded = FaceSource(colour, TEMPLATE, mode="center", degrade=Degradation.from_config({"resolution": 16}))
    mixed = FeatureStore(backbone, degraded, ENGINE, views=2, originals=True)
    assert (mixed.draws, mixed.views) == (2, 4)
    both = mixed.stack(rels).numpy()
    only_degraded = FeatureStore(backbone, degraded, ENGINE, views=2).stack(rels).numpy()
    originals = FeatureStore(backbone, FaceSource(colour, TEMPLATE, mode="center"), ENGINE, views=2).stack(rels).numpy()
    np.testing.assert_array_equal(both[:, :2], only_degraded)  # view 0 (what evaluation scores) unchanged
    np.testing.assert_array_equal(both[:, 2:], originals)
    assert not np.allclose(both[:, 0], both[:, 2], atol=1e-3)
    with pytest.raises(FacematchError, match="data.features.originals=true .* needs data.degrade"):
        FeatureStore(backbone, FaceSource(colour, TEMPLATE, mode="center"), ENGINE, views=2, originals=True)

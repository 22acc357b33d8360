"""Identity index, sampling, protocol readers and the DataModule on real LFW files."""

from __future__ import annotations

import random

import pytest
import torch

from facematch.data import sampling
from facematch.data.batches import PairBatches, PKBatches, TripletBatches
from facematch.data.datasets import ResampledRows
from facematch.data.identities import IdentityIndex
from facematch.data.pair_files import fold_identities, identity_of, read_lfw_pairs, read_pair_list, read_triplet_list
from facematch.errors import FacematchError
from tests.helpers import datamodule as _dm


def test_pairs_txt_folds_follow_file_order(data_dir):
    pairs = read_lfw_pairs(data_dir / "lfw" / "pairs.txt")
    assert len(pairs) == 6000
    assert [p.fold for p in pairs] == [k // 600 for k in range(6000)]
    assert all(p.same for p in pairs[:300]) and not any(p.same for p in pairs[300:600])
    assert pairs[0].a == "Abel_Pacheco/Abel_Pacheco_0001.jpg" and pairs[0].b == "Abel_Pacheco/Abel_Pacheco_0004.jpg"
    people = [fold_identities(pairs, k) for k in range(10)]
    assert all(not (people[i] & people[j]) for i in range(10) for j in range(i + 1, 10))
    assert len(read_lfw_pairs(data_dir / "lfw" / "pairsDevTest.txt")) == 1000


def test_identity_index_lfw_and_vggface2(lfw_root, data_dir):
    idx = IdentityIndex.from_folder(lfw_root)
    assert len(idx.identities) == 5749 and idx.n_images == 13233
    assert sum(1 for v in idx.images.values() if len(v) >= 2) == 1680
    vgg = IdentityIndex.from_folder(data_dir / "vggface2-samples" / "tight_crop")
    assert {i: len(v) for i, v in vgg.images.items()} == {"n000106": 6, "n007241": 19, "n008937": 7}


def test_split_is_identity_disjoint_and_deterministic(lfw_root):
    idx = IdentityIndex.from_folder(lfw_root)
    tr, va = idx.split(0.1, seed=3)
    assert not set(tr.identities) & set(va.identities)
    assert set(tr.identities) | set(va.identities) == set(idx.identities)
    assert all(len(va.images[i]) >= 2 for i in va.identities)
    assert va.identities == idx.split(0.1, seed=3)[1].identities != idx.split(0.1, seed=4)[1].identities


def test_pairs_balanced_deterministic_never_self(lfw_root):
    idx = IdentityIndex.from_folder(lfw_root).sample_identities(200, seed=0)
    rows = sampling.sample_pairs(idx, 400, random.Random(7))
    assert sum(p.same for p in rows) == 200
    assert all(p.a != p.b for p in rows)
    assert all((identity_of(p.a) == identity_of(p.b)) == p.same for p in rows)
    assert rows == sampling.sample_pairs(idx, 400, random.Random(7))
    trip = sampling.sample_triplets(idx, 50, random.Random(1))
    assert all(identity_of(t.anchor) == identity_of(t.positive) != identity_of(t.negative) for t in trip)
    assert all(t.anchor != t.positive for t in trip)


def test_degenerate_rows_counted_and_dropped(data_dir, tmp_path, caplog):
    # The seed list pairs images with themselves (1,562 rows across the original lists).
    rows = read_pair_list(data_dir / "seed-splits" / "couples" / "train.txt")
    self_rows = sum(r.a == r.b for r in rows)
    assert self_rows > 0
    idx = IdentityIndex.from_paths(data_dir / "lfw" / "lfw-deepfunneled", [p for r in rows for p in (r.a, r.b)])
    with caplog.at_level("WARNING"):
        kept = sampling.clean_rows(rows, idx, "couples/train.txt", __import__("logging").getLogger("t"))
    assert len(kept) == len(rows) - self_rows
    assert f"{self_rows} pair an image with itself" in caplog.text
    # missing and unreadable images are dropped from the index and then from the rows
    root = tmp_path / "root"
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    src = data_dir / "lfw" / "lfw-deepfunneled" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    (root / "A" / "A_0001.jpg").write_bytes(src.read_bytes())
    (root / "B" / "B_0001.jpg").write_text("not an image")
    (root / "B" / "B_0002.jpg").write_bytes(b"")
    idx = IdentityIndex.from_paths(root, ["A/A_0001.jpg", "B/B_0001.jpg", "B/B_0002.jpg", "C/C_0001.jpg"])
    assert {k: len(v) for k, v in idx.dropped.items()} == {"unreadable": 1, "empty": 1, "missing": 1}
    from facematch.data.pair_files import Pair

    good = Pair("A/A_0001.jpg", "A/A_0001.jpg", True)
    with pytest.raises(FacematchError, match="no usable rows"):
        sampling.clean_rows([good, Pair("A/A_0001.jpg", "B/B_0001.jpg", False)], idx, "x", __import__("logging").getLogger("t"))


def test_test_fold_holds_out_its_people(lfw_root, data_dir):
    dm = _dm(lfw_root, pairs=str(data_dir / "lfw" / "pairs.txt"), test_fold=3)
    dm.setup("fit")
    pairs = read_lfw_pairs(data_dir / "lfw" / "pairs.txt")
    fold_people = fold_identities(pairs, 3)
    assert len(dm.test_set) == 600 and all(p.fold == 3 for p in dm.test_set.rows)
    train_people = set(dm.train_set.index.identities)
    val_people = sampling.row_identities(dm.val_set.rows)
    assert not (train_people & fold_people) and not (val_people & fold_people) and not (train_people & val_people)
    xa, xb, same, la, lb = dm.val_set[0]
    assert xa.shape == (3, 112, 96) and xa.dtype == torch.float32


def test_augmentation_train_only(lfw_root):
    dm = _dm(lfw_root, max_identities=30)
    dm.setup("fit")
    torch.manual_seed(0)
    v1, v2 = dm.val_set[0][0], dm.val_set[0][0]
    assert torch.equal(v1, v2)  # validation is deterministic
    t = [dm.train_set[0][0] for _ in range(4)]
    assert any(not torch.equal(t[0], x) for x in t[1:])  # training is augmented


def test_pair_list_drops_overlap_with_validation(data_dir):
    dm = _dm(data_dir / "lfw" / "lfw-deepfunneled",
             train_list=str(data_dir / "seed-splits" / "couples" / "train.txt"),
             val_list=str(data_dir / "seed-splits" / "couples" / "test.txt"))
    dm.setup("fit")
    val_people = sampling.row_identities(dm.val_set.rows)
    assert not sampling.row_identities(dm.train_set.rows) & val_people
    assert dm.stats["train_rows_dropped_overlap"] > 0
    assert all(p.a != p.b for p in dm.train_set.rows + dm.val_set.rows)


def test_triplet_list_rows_of_the_test_fold_count_as_overlap_not_missing(data_dir, caplog):
    listed = data_dir / "seed-splits" / "triplets" / "train.txt"
    pairs = data_dir / "lfw" / "pairs.txt"
    dm = _dm(data_dir / "lfw" / "lfw-deepfunneled", train_triplets=str(listed), batches=TripletBatches(),
             pairs=str(pairs), test_fold=0, val_pairs=200)
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    rows = [r for r in read_triplet_list(listed) if len(set(sampling.row_paths(r))) == 3]
    held_out = fold_identities(read_lfw_pairs(pairs), 0) | sampling.row_identities(dm.val_set.rows)
    expected = sum(1 for r in rows if sampling.row_identities([r]) & held_out)
    assert expected > 0 and dm.stats["train_rows_dropped_overlap"] == expected
    assert len(dm.train_set.rows) == len(rows) - expected
    assert not sampling.row_identities(dm.train_set.rows) & held_out
    assert "576 pair an image with itself, 0 name a missing or unreadable image" in caplog.text


@pytest.mark.parametrize("batches", [PairBatches(), TripletBatches(), PKBatches()], ids=lambda b: type(b).__name__)
def test_each_batch_kind_serves_its_items_seeded_and_identity_disjoint(data_dir, batches):
    root = data_dir / "lfw-aligned-112"
    dm = _dm(root, batches=batches, max_identities=40, min_images=2, train_samples=16, pk={"p": 3, "k": 2})
    dm.setup("fit")
    again = _dm(root, batches=type(batches)(), max_identities=40, min_images=2, train_samples=16, pk={"p": 3, "k": 2})
    again.setup("fit")
    val_people = sampling.row_identities(dm.val_set.rows)
    batch = next(iter(dm.train_dataloader()))
    if isinstance(batches, PKBatches):
        x, labels = batch
        assert x.shape == (6, 3, 112, 96) and sorted(torch.bincount(labels).tolist())[-3:] == [2, 2, 2]  # P=3 x K=2
        people = {identity_of(p) for p in dm.train_set.paths}
        assert dm.train_set.paths == again.train_set.paths and len(people) > 3
    else:
        assert isinstance(dm.train_set, ResampledRows) and len(dm.train_set) == 16
        assert dm.train_set.inner.rows == again.train_set.inner.rows  # seeded
        people = sampling.row_identities(dm.train_set.inner.rows)
        assert len(batch) == (5 if isinstance(batches, PairBatches) else 3) and batch[0].shape == (4, 3, 112, 96)
    assert people and not people & val_people


def test_pk_batches_refuse_a_training_list(data_dir):
    dm = _dm(data_dir / "lfw" / "lfw-deepfunneled", batches=PKBatches(),
             train_list=str(data_dir / "seed-splits" / "couples" / "train.txt"))
    with pytest.raises(FacematchError, match="P x K batches"):
        dm.setup("fit")

"""Batched, cached inference with the MobileFaceNet weights on lfw-aligned-112: flip modes, bf16, runtimes,
the on-disk cache (hits, resume, keys), model fingerprints and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facematch.errors import FacematchError, UnreadableImageError, WeightsError
from facematch.embedding.cache import EmbeddingCache, make_cache_key
from facematch.embedding.embedder import Embedder
from facematch.models.loading import build_arch_model, load_checkpoint_model, load_model, state_dict_sha256
from facematch.data.source import FaceSource
from facematch.models.backbones import build_backbone
from facematch.models.heads import LinearHead

RELS = [
    "George_W_Bush/George_W_Bush_0007.jpg",
    "George_W_Bush/George_W_Bush_0016.jpg",
    "Colin_Powell/Colin_Powell_0040.jpg",
    "Colin_Powell/Colin_Powell_0049.jpg",
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
]


@pytest.fixture(scope="module")
def mfn(mfn_weights):
    return build_arch_model("mobilefacenet", str(mfn_weights))


@pytest.fixture(scope="module")
def source(data_dir):
    return FaceSource(data_dir / "lfw-aligned-112", "sphereface_112x96", mode="prealigned",
                      src_template="arcface_112x112")


class CountingSource:
    """Wraps a source; counts calls and can fail on chosen paths."""

    def __init__(self, inner, fail=()):
        self.inner, self.fail, self.calls = inner, set(fail), 0
        self.key, self.root = inner.key, inner.root

    def __call__(self, rel):
        self.calls += 1
        if rel in self.fail:
            raise UnreadableImageError(f"{rel} is not an image file PIL can read (test)")
        return self.inner(rel)


def embed_paths(model, spec, source, rels, **kw):
    return Embedder(model, spec, source, **kw).embed(rels)


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_flip_modes_and_mirror_consistency(mfn, source):
    crops = np.stack([source(r) for r in RELS[:3]])
    plain = Embedder(mfn.module, mfn.spec, flip="none", progress=False).embed_arrays(crops)
    mirrored = Embedder(mfn.module, mfn.spec, flip="none").embed_arrays(np.ascontiguousarray(crops[:, :, ::-1]))
    concat = Embedder(mfn.module, mfn.spec, flip="concat").embed_arrays(crops)
    summed = Embedder(mfn.module, mfn.spec, flip="sum").embed_arrays(crops)
    assert plain.shape == (3, 128) and concat.shape == (3, 256) and summed.shape == (3, 128)
    np.testing.assert_allclose(concat[:, :128], plain, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(concat[:, 128:], mirrored, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(summed, plain + mirrored, rtol=1e-4, atol=1e-4)
    # real weights: same person closer than different people
    assert _cos(plain[0], plain[1]) > _cos(plain[0], plain[2]) + 0.3


def test_bf16_close_to_fp32_and_the_callers_model_untouched(mfn, source):
    crops = np.stack([source(r) for r in RELS[:3]])
    net = mfn.module
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fp32 = Embedder(net, mfn.spec, flip="none", precision="fp32").embed_arrays(crops)
    bf16 = Embedder(net, mfn.spec, flip="none", precision="bf16").embed_arrays(crops)
    assert bf16.dtype == np.float32
    assert min(_cos(a, b) for a, b in zip(fp32, bf16)) > 0.99
    # the embedder ran an inference copy: the caller's model keeps its mode, layout and weights
    assert net.training
    assert not net.net.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    net.eval()


@pytest.mark.parametrize("runtime", ["fused", "jit"])
def test_rewritten_runtimes_match_eager_fp32(mfn, source, runtime):
    crops = np.stack([source(r) for r in RELS])
    eager = Embedder(mfn.module, mfn.spec, flip="concat", runtime="eager", precision="fp32").embed_arrays(crops)
    e = Embedder(mfn.module, mfn.spec, flip="concat", runtime=runtime, precision="fp32")
    other = e.embed_arrays(crops)
    assert e.stats["runtime"] == runtime
    assert min(_cos(a, b) for a, b in zip(eager, other)) > 1 - 1e-4


def test_auto_runtime_is_chosen_among_those_that_match(mfn, source):
    from facematch.models import inference

    crops = np.stack([source(r) for r in RELS])
    x = torch.from_numpy(np.repeat(crops, 60, axis=0))  # 300 crops: large enough for auto to compare
    e = Embedder(mfn.module, mfn.spec, flip="none", runtime="auto", precision="fp32", batch_size=300)
    e.embed_arrays(x.numpy())
    tried = e._net.info["probe_images_per_s"]
    assert set(tried) == {"eager", "fused"} and e.stats["runtime"] in tried
    assert inference.JIT_MIN_IMAGES > 300  # the traced candidate is built only for large jobs


def test_cache_second_call_reuses_embeddings(mfn, source, tmp_path, monkeypatch):
    # fp32 named: `auto` is bf16 on a CPU with native bf16, and the key below is the fp32 one
    e1 = Embedder(mfn.module, mfn.spec, source, num_workers=0, flip="concat", precision="fp32", cache_dir=tmp_path,
                  progress=False)
    emb, paths = e1.embed(RELS + RELS[:2])
    key = e1.cache.key
    assert paths == RELS and emb.shape == (5, 256)  # duplicates removed, first-seen order
    assert (tmp_path / key / "meta.json").is_file() and EmbeddingCache(tmp_path, key).parts()
    assert key == make_cache_key(state_dict_sha256(mfn.module.state_dict()), source, mfn.spec, views=2)[0]

    def boom(*a, **k):
        raise AssertionError("the model must not run on a warm cache")

    monkeypatch.setattr(mfn.module, "forward", boom)
    e = Embedder(mfn.module, mfn.spec, source, num_workers=0, flip="concat", precision="fp32", cache_dir=tmp_path)
    again, paths2 = e.embed(list(reversed(RELS)))
    assert paths2 == list(reversed(RELS))
    np.testing.assert_array_equal(again, emb[::-1])
    assert e.stats["cache_hit"] and e.stats["cache_hits"] == 5 and e.stats["computed"] == 0
    # the sum of the two views comes from the same entries: one cache serves every flip mode but none
    summed = Embedder(mfn.module, mfn.spec, source, num_workers=0, flip="sum", precision="fp32",
                      cache_dir=tmp_path).embed(RELS)[0]
    np.testing.assert_allclose(summed, emb[:, :128] + emb[:, 128:], rtol=1e-6)


def test_tail_runs_per_view_on_cached_trunk_outputs(mfn, source, tmp_path):
    """A head on a frozen backbone: the backbone's per-view outputs are cached once and the head runs on
    them, giving what the whole model gives on the crops."""
    head = LinearHead(128, dim=32, init="random").eval()
    whole = torch.nn.Sequential(mfn.module, torch.nn.Identity())
    crops = np.stack([source(r) for r in RELS])
    with torch.no_grad():
        ref = Embedder(whole, mfn.spec, flip="concat", precision="fp32", runtime="eager").forward_views(crops)
        ref = head.project(torch.from_numpy(ref).view(-1, 128)).view(5, -1).numpy()
    e = Embedder(mfn.module, mfn.spec, source, tail=head.project, num_workers=0, flip="concat", precision="fp32",
                 runtime="eager", cache_dir=tmp_path, progress=False)
    out, _ = e.embed(RELS)
    assert out.shape == (5, 64)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    plain = Embedder(mfn.module, mfn.spec, source, num_workers=0, flip="concat", precision="fp32", cache_dir=tmp_path)
    plain.embed(RELS)
    assert plain.stats["cache_hits"] == 5  # the head's run filled the backbone's entries


def test_killed_run_resumes_from_saved_parts(mfn, source, tmp_path):
    bad = CountingSource(source, fail={RELS[4]})
    e = Embedder(mfn.module, mfn.spec, bad, batch_size=2, num_workers=0, flip="none", cache_dir=tmp_path,
                 save_every=2, progress=False)
    with pytest.raises(UnreadableImageError):
        e.embed(RELS)
    assert len(EmbeddingCache(tmp_path, e.cache.key).load()) == 4  # the batches before the failure were kept
    good = CountingSource(source)
    e2 = Embedder(mfn.module, mfn.spec, good, num_workers=0, flip="none", cache_dir=tmp_path, progress=False)
    emb, _ = e2.embed(RELS)
    assert good.calls == 1 and e2.stats["computed"] == 1 and emb.shape == (5, 128)


def test_worker_processes_and_user_errors_cross_them(mfn, source, tmp_path):
    emb, paths = embed_paths(mfn.module, mfn.spec, source, RELS, batch_size=2, num_workers=1, flip="none",
                             progress=False)
    ref = Embedder(mfn.module, mfn.spec, flip="none").embed_arrays(np.stack([source(r) for r in RELS]))
    np.testing.assert_allclose(emb, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(FacematchError, match="image not found"):
        embed_paths(mfn.module, mfn.spec, source, ["Nobody/Nobody_0001.jpg"], num_workers=1, progress=False)


def test_cache_keys_separate_everything_an_embedding_depends_on(mfn, source, data_dir):
    k = make_cache_key(mfn.fingerprint, source, mfn.spec, views=2)[0]
    other_src = FaceSource(data_dir / "lfw" / "lfw-deepfunneled", "sphereface_112x96", mode="center")
    keys = {
        k,
        make_cache_key(mfn.fingerprint, source, mfn.spec, views=1)[0],
        make_cache_key(mfn.fingerprint, source, mfn.spec, views=2, bf16=True)[0],
        make_cache_key("0" * 64, source, mfn.spec, views=2)[0],
        make_cache_key(mfn.fingerprint, other_src, mfn.spec, views=2)[0],
    }
    assert len(keys) == 5
    assert k == make_cache_key(mfn.fingerprint, source, mfn.spec, views=2)[0]  # deterministic
    assert k.startswith("mobilefacenet-e839247cdbdf-prealigned-arcface_112x112-sphereface_112x96-views2-fp32-")
    with pytest.raises(ValueError, match="views must be 1 or 2"):
        make_cache_key(mfn.fingerprint, source, mfn.spec, views=3)
    with pytest.raises(FacematchError, match="flip='twice' is unknown"):
        Embedder(mfn.module, mfn.spec, source, flip="twice")


def test_model_fingerprints_and_checkpoint_loading(mfn, mfn_weights, tmp_path):
    assert mfn.fingerprint == "e839247cdbdfc023fb7cadeaf53a4549d50c8fc24ad154c02e35920ea8910d99"
    backbone = build_backbone("mobilefacenet", weights=str(mfn_weights))
    head = LinearHead(128, dim=64, init="random")
    state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    ckpt = tmp_path / "last.ckpt"
    torch.save({"epoch": 3, "global_step": 30, "state_dict": state,
                "facematch": {"backbone": "mobilefacenet", "head": {"dim": 64, "init": "random"},
                              "config": {"arch": {"name": "mobilefacenet"}}}}, ckpt)
    m = load_model(str(ckpt), {"name": "resnet50"})  # ckpt wins over arch
    assert m.spec.name == "mobilefacenet" and m.description["kind"] == "checkpoint"
    assert m.fingerprint == state_dict_sha256(state) and m.description["epoch"] == 3
    x = torch.randn(2, 3, 112, 96)
    with torch.no_grad():
        out = m.module(x)
        ref = head.eval().project(backbone.eval()(x))
    assert out.shape == (2, 64)
    torch.testing.assert_close(out, ref)
    torch.save({"net_state_dict": backbone.state_dict()}, tmp_path / "bare.ckpt")
    with pytest.raises(WeightsError, match="not a facematch-train checkpoint"):
        load_checkpoint_model(tmp_path / "bare.ckpt")
    with pytest.raises(WeightsError, match="checkpoint not found"):
        load_checkpoint_model(tmp_path / "missing.ckpt")


def test_eval_instantiates_the_arch_node_as_training_does(mfn_weights):
    node = {"_target_": "facematch.models.backbones.build_backbone", "name": "mobilefacenet",
            "weights": str(mfn_weights), "pretrained": None, "freeze": True, "unfreeze_last": 1}
    m = load_model(None, node)
    trainable = {n.split(".")[1] for n, p in m.module.named_parameters() if p.requires_grad}
    assert trainable == {"linear1"}  # freeze / unfreeze_last reached build_backbone
    assert m.fingerprint == "e839247cdbdfc023fb7cadeaf53a4549d50c8fc24ad154c02e35920ea8910d99"
    with pytest.raises(FacematchError, match="weights file not found"):  # one line, not Hydra's wrapper
        load_model(None, {**node, "weights": "/nonexistent/w.ckpt"})

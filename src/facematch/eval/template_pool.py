"""The images the nearest-template accuracy (:mod:`facematch.eval.nearest_template`) is measured on by
``facematch-eval`` and per-fold scoring: the ``templates`` config group (``conf/templates/``).

- ``templates=pairs`` (the default): the images of ``data.pairs``, embedded as the protocol embeds them
  (``protocol.flip``; the pairs' own embeddings are reused).
- ``templates=folder``: the second original project's LFW test as it ran: every person under ``data.root``
  with ``min_images`` (3) or more images, all of their images, each embedded once without a flip
  (``flip: none``). ``Code/DatasetMapping.py`` ``getMappingLFW`` keeps the LFW folders with 3+ files,
  ``Code/DataLoader.py`` ``generate_triplets_test`` draws 2,000 anchors (a person uniformly, then one of
  their images), and ``Code/eval_model.py`` ``testValues`` averages 5 images drawn with replacement from the
  same lists into each person's template. Per-fold scoring (``data.test_fold=k``) keeps fold k's people only:
  the others trained.

The leak, in both pools and in the original: a probe is drawn from the same images as its own person's
template, so it can be one of the images averaged into that template; ``probes_in_own_template`` (in the
result) is how often it is. The closed-set validation figure (``callbacks.template_accuracy``) has no leak:
its templates are training images, its probes validation images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from facematch.config import instantiate_node
from facematch.data.bin_set import is_bin
from facematch.data.identities import IdentityIndex
from facematch.data.pair_files import identity_of
from facematch.embedding.flip import FLIP_MODES
from facematch.errors import FacematchError
from facematch.eval.nearest_template import template_report
from facematch.eval.verification import embedder_for

POOLS = ("pairs", "folder")

# (relative paths, flip) -> (embeddings, their paths): how a pool's images are embedded
Embed = Callable[[list[str], str], tuple[np.ndarray, list[str]]]


@dataclass(frozen=True)
class TemplateSettings:
    """One ``templates`` config node (``conf/templates/pairs.yaml``, ``folder.yaml``)."""

    pool: str = "pairs"          # pairs | folder
    flip: str | None = None      # null: protocol.flip | none | sum | concat
    min_images: int = 3          # people with fewer images in the pool take no part
    per_class: int = 5           # images averaged into a template (drawn with replacement)
    n_probes: int = 2000

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise FacematchError(f"templates.pool={self.pool!r} is not a pool (choose {' | '.join(POOLS)})")
        if self.flip is not None and self.flip not in FLIP_MODES:
            raise FacematchError(f"templates.flip={self.flip!r} (choose null or {' | '.join(FLIP_MODES)})")
        for name, least in (("min_images", 2), ("per_class", 1), ("n_probes", 1)):
            if int(getattr(self, name)) < least:
                raise FacematchError(f"templates.{name}={getattr(self, name)} is too small (at least {least})")


def folder_pool(index: IdentityIndex, min_images: int, people: Iterable[str] | None = None) -> list[str]:
    """Every image of the people of ``index`` (of ``people`` only, when given) with ``min_images`` or more,
    people in sorted order, each person's images sorted."""
    if people is not None:
        index = index.subset(people)
    index = index.with_min_images(min_images)
    return [p for ident in index.identities for p in index.images[ident]]


def measure(settings: TemplateSettings, emb: np.ndarray, paths: Sequence[str], embed: Embed, root,
            protocol_flip: str, *, people: Iterable[str] | None = None, seed: int = 0) -> dict:
    """The nearest-template figures of ``settings``' pool: ``emb`` / ``paths`` are the pairs' images as the
    protocol (``protocol_flip``) embedded them, ``embed`` embeds others, ``root`` is ``data.root``
    (``folder``); ``people``: only theirs (per-fold scoring). ``{"skipped": why}`` when no one qualifies."""
    keep_people = set(people) if people is not None else None
    flip = settings.flip or protocol_flip
    if settings.pool == "folder":
        root_index = IdentityIndex.from_folder(root) if not isinstance(root, IdentityIndex) else root
        rels = folder_pool(root_index, settings.min_images, keep_people)
        if not rels:
            return {"skipped": f"no person under {root_index.root} has {settings.min_images} or more images",
                    **asdict(settings), "flip": flip}
        e, p = embed(rels, flip)
    else:
        keep = [i for i, rel in enumerate(paths) if keep_people is None or identity_of(rel) in keep_people]
        rels = [paths[i] for i in keep]
        e, p = (np.asarray(emb)[keep], rels) if flip == protocol_flip else embed(rels, flip)
    labels = np.array([identity_of(rel) for rel in p])
    try:
        out = template_report(e, labels, settings.n_probes, settings.per_class, seed, settings.min_images)
    except ValueError as err:
        return {"skipped": str(err), **asdict(settings), "flip": flip}
    return {**out, "pool": settings.pool, "flip": flip, "min_images": settings.min_images}


def template_figures(cfg, model, source, engine, emb, paths: Sequence[str], protocol_flip: str,
                     people: Iterable[str] | None = None) -> dict:
    """:func:`measure` as ``cfg.templates`` says, for ``model`` (an :class:`~facematch.models.loading.EvalModel`)
    on the crops of ``source`` with the engine settings ``engine`` (:class:`~facematch.embedding.engine.EngineSettings`); ``emb`` / ``paths``: the pairs'
    images as the protocol embedded them."""
    settings = instantiate_node(cfg.templates)
    root = str(cfg.data.root)
    if settings.pool == "folder" and is_bin(root):
        raise FacematchError(f"templates=folder reads every image of every person under data.root, but {root} is a "
                             ".bin set of pairs; use templates=pairs (the images of data.pairs)")
    return measure(settings, emb, paths, lambda rels, flip: embedder_for(model, source, flip, engine).embed(rels),
                   root, protocol_flip, people=people, seed=int(cfg.seed))

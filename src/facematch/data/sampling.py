"""Where a pair, a triplet and a P x K batch are made, all from an :class:`IdentityIndex`.

Every draw takes an explicit ``random.Random`` so results are deterministic from the seed.
"""

from __future__ import annotations

import random

from facematch.data.identities import IdentityIndex
from facematch.data.pair_files import Pair, Triplet, identity_of
from facematch.errors import FacematchError


def _multi(index: IdentityIndex) -> list[str]:
    multi = [i for i in index.identities if len(index.images[i]) >= 2]
    if not multi:
        raise FacematchError(
            f"no identity under {index.root} has two images, so no same-person pair can be drawn; "
            "use more identities (data.max_identities) or another dataset"
        )
    return multi


def _two_identities(ids: list[str], rng: random.Random) -> tuple[str, str]:
    if len(ids) < 2:
        raise FacematchError("at least two identities are needed to draw a different-person pair")
    a, b = rng.sample(ids, 2)
    return a, b


def sample_pairs(index: IdentityIndex, n: int, rng: random.Random) -> list[Pair]:
    """``n`` pairs, alternating same / different (balanced), never an image paired with itself.

    Same: an identity with >= 2 images, uniformly, then two distinct images. Different: two distinct
    identities, uniformly, one image each.
    """
    multi, ids = _multi(index), index.identities
    out = []
    for k in range(n):
        if k % 2 == 0:
            ident = rng.choice(multi)
            a, b = rng.sample(index.images[ident], 2)
            out.append(Pair(a, b, True))
        else:
            ia, ib = _two_identities(ids, rng)
            out.append(Pair(rng.choice(index.images[ia]), rng.choice(index.images[ib]), False))
    return out


def sample_triplets(index: IdentityIndex, n: int, rng: random.Random, per_class: int = 0) -> list[Triplet]:
    """``n`` random triplets: anchor and positive distinct images of one person, negative another person.

    ``per_class``: first ``per_class`` triplets with each person (of two or more images) as the anchor's,
    then ``n`` minus those drawn as usual (none when they already reach ``n``), all shuffled: how the FaceNet
    reproduction drew its epochs (``Code/DataLoader.py``), so that every person trains in every epoch.
    """
    multi, ids = _multi(index), index.identities
    fixed = per_class * len(multi)
    out = []
    for k in range(max(n, fixed)):
        ident = multi[k // per_class] if k < fixed else rng.choice(multi)
        a, p = rng.sample(index.images[ident], 2)
        other = rng.choice(ids)
        while other == ident:
            other = rng.choice(ids)
        out.append(Triplet(a, p, rng.choice(index.images[other])))
    if per_class:
        rng.shuffle(out)
    return out


def clean_rows(rows: list, index: IdentityIndex | None, what: str, log) -> list:
    """Drop degenerate list rows (an image paired with itself, or an image not in ``index``: missing or
    unreadable) and report the counts. Returns the kept rows."""
    kept, self_pairs, unusable = [], 0, 0
    for row in rows:
        paths = row_paths(row)
        if len(set(paths)) < len(paths):
            self_pairs += 1
        elif index is not None and not all(p in index for p in paths):
            unusable += 1
        else:
            kept.append(row)
    if self_pairs or unusable:
        log.warning(
            "%s: dropped %d of %d rows (%d pair an image with itself, %d name a missing or unreadable image)",
            what, self_pairs + unusable, len(rows), self_pairs, unusable,
        )
    if not kept:
        raise FacematchError(f"{what}: no usable rows left after dropping degenerate ones; check the file")
    return kept


def row_paths(row: Pair | Triplet) -> tuple[str, ...]:
    return (row.a, row.b) if isinstance(row, Pair) else (row.anchor, row.positive, row.negative)


def row_images(rows: list) -> set[str]:
    return {p for row in rows for p in row_paths(row)}


def row_identities(rows: list) -> set[str]:
    return {identity_of(p) for p in row_images(rows)}

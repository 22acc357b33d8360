"""The one identity index: identity -> image paths, for a dataset folder or a list file.

Pairs, triplets and P x K batches are all drawn from an :class:`IdentityIndex` (see ``sampling.py``).
Images are paths relative to the dataset root; the identity of an image is its parent folder, which
holds for LFW (``<Name>/<Name>_NNNN.jpg``), VGGFace2 (``<identity>/<file>.jpg``) and the seed lists.
A packed dataset root (``facematch-data pack``, a folder or an object-store URL) is indexed from its
facematch index instead of a folder scan: the same sorted paths, so the same labels and item order.
"""

from __future__ import annotations

import logging
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from facematch.data.pair_files import identity_of
from facematch.errors import DataNotFoundError, FacematchError
from facematch.faces.images import list_images
from facematch.data.shards import is_packed, open_packed

log = logging.getLogger(__name__)


# The first bytes of the formats PIL reads for us (IMAGE_SUFFIXES). Checked by hand rather than with
# Image.open: the index checks every file of the dataset at each start, and a header parse costs
# several times a 16-byte read. A file that passes here but does not decode is still reported, with its name, when it is loaded.
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
              b"P3", b"P6", b"P2", b"P5")


def check_image(path: Path) -> str | None:
    """Why ``path`` cannot be used ('missing', 'empty', 'unreadable': not an image format's signature), or
    None. Reads the first 16 bytes only."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    if not head:
        return "empty"
    if head.startswith(SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    return "unreadable"


def missing_root_error(root: Path) -> DataNotFoundError:
    return DataNotFoundError(
        f"dataset root not found: {root}. Set FACEMATCH_DATA_DIR to the folder holding lfw/ "
        "(e.g. FACEMATCH_DATA_DIR=../shared/data) or pass data.root=PATH; get LFW with "
        "`facematch-data download lfw --dest $FACEMATCH_DATA_DIR/lfw`"
    )


@dataclass
class IdentityIndex:
    root: Path
    images: dict[str, list[str]]  # identity -> sorted relative paths
    dropped: dict[str, list[str]] = field(default_factory=dict)  # reason -> relative paths

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, root: str | os.PathLike, check: bool = True) -> "IdentityIndex":
        """Scan ``root/<identity>/<image>`` (:func:`~facematch.faces.images.list_images`, the scan ``prepare``
        uses, kept to that depth); files that are empty or not images are dropped and counted."""
        if is_packed(root):
            return cls.from_paths(root, open_packed(root).rels, check=False)
        root = Path(root)
        if not root.is_dir():
            raise missing_root_error(root)
        rels = [rel for rel in list_images(root) if rel.count("/") == 1]
        if not rels:
            raise DataNotFoundError(
                f"no images found under {root}; expected <identity>/<image>.jpg folders "
                "(LFW or VGGFace2 layout). Check data.root / FACEMATCH_DATA_DIR"
            )
        return cls.from_paths(root, rels, check=check)

    @classmethod
    def from_paths(cls, root: str | os.PathLike, rel_paths: Iterable[str], check: bool = True) -> "IdentityIndex":
        packed = open_packed(root) if is_packed(root) else None
        root = packed.root if packed is not None else Path(root)
        if packed is None and not root.is_dir():
            raise missing_root_error(root)
        images: dict[str, list[str]] = defaultdict(list)
        dropped: dict[str, list[str]] = defaultdict(list)
        for rel in sorted(set(rel_paths)):
            if packed is not None:  # checked when packed: present or missing
                reason = None if rel in packed else "missing"
            else:
                reason = check_image(root / rel) if check else None
            if reason:
                dropped[reason].append(rel)
            else:
                images[identity_of(rel)].append(rel)
        index = cls(root, dict(images), dict(dropped))
        index.report_dropped()
        return index

    def report_dropped(self) -> None:
        for reason, rels in self.dropped.items():
            log.warning("dropped %d %s image(s) under %s, e.g. %s", len(rels), reason, self.root, rels[:3])

    # -- queries --------------------------------------------------------------------------------------
    @property
    def identities(self) -> list[str]:
        return sorted(self.images)

    @property
    def n_images(self) -> int:
        return sum(len(v) for v in self.images.values())

    def label_map(self) -> dict[str, int]:
        return {ident: i for i, ident in enumerate(self.identities)}

    def paths_and_labels(self) -> tuple[list[str], list[int]]:
        labels = self.label_map()
        paths = [p for ident in self.identities for p in self.images[ident]]
        return paths, [labels[identity_of(p)] for p in paths]

    def __contains__(self, rel: str) -> bool:
        return rel in self.images.get(identity_of(rel), ())

    # -- derived indices ----------------------------------------------------------------------------
    def subset(self, identities: Iterable[str]) -> "IdentityIndex":
        keep = set(identities)
        return IdentityIndex(self.root, {k: v for k, v in self.images.items() if k in keep}, self.dropped)

    def without(self, identities: Iterable[str]) -> "IdentityIndex":
        drop = set(identities)
        return self.subset(i for i in self.images if i not in drop)

    def with_min_images(self, n: int) -> "IdentityIndex":
        return self.subset(i for i, v in self.images.items() if len(v) >= n)

    def sample_identities(self, n: int | None, seed: int) -> "IdentityIndex":
        if n is None or n >= len(self.images):
            return self
        return self.subset(random.Random(seed).sample(self.identities, n))

    def split(self, val_fraction: float, seed: int) -> tuple["IdentityIndex", "IdentityIndex"]:
        """Identity-disjoint train/val split, deterministic from ``seed``.

        A fraction ``val_fraction`` of the identities with at least two images (so that same-person pairs
        exist on both sides) goes to validation: at least two (so different-person pairs exist too), and
        at least two stay in training.
        """
        ids = self.identities
        multi = [i for i in ids if len(self.images[i]) >= 2]
        if val_fraction <= 0:
            return self, self.subset(())
        if len(multi) < 4:
            raise FacematchError(
                f"only {len(multi)} identities under {self.root} have two or more images; an identity-disjoint "
                "train/val split needs at least 4 (use more data, or give data.val_list=FILE)"
            )
        n_val = min(len(multi) - 2, max(2, round(val_fraction * len(multi))))
        val = set(random.Random(seed).sample(multi, n_val))
        return self.subset(i for i in ids if i not in val), self.subset(val)

"""The backbone registry: every module of this package declares one or more backbones
(:class:`~facematch.models.declaration.BackboneDeclaration` in its ``DECLARATIONS``), found here by scanning
the package, so adding a backbone is one module here plus one ``conf/arch/<name>.yaml`` (docs/layout.md).
The rest of facematch reads :data:`BACKBONES`; nothing lists backbones by hand.

Reading the declarations imports no torch (``facematch-data`` lists the published weights from them);
building a backbone does. Weight files are always loaded with ``weights_only=True`` (:mod:`facematch.models.weights`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from facematch.errors import FacematchError
from facematch.models.declaration import BackboneDeclaration
from facematch.utils.fetch import Remote

if TYPE_CHECKING:
    from facematch.models.base import Backbone


def discover() -> dict[str, BackboneDeclaration]:
    """``name -> declaration`` of every module in this package, in name order; a name declared twice is a
    programming error."""
    found: dict[str, BackboneDeclaration] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for decl in getattr(module, "DECLARATIONS", ()):
            if decl.name in found:
                raise RuntimeError(f"backbone {decl.name!r} is declared twice (in {module.__name__} too)")
            found[decl.name] = decl
    return dict(sorted(found.items()))


#: ``arch.name`` / ``--arch`` -> its declaration.
BACKBONES: dict[str, BackboneDeclaration] = discover()


def declaration(name: str) -> BackboneDeclaration:
    if name not in BACKBONES:
        raise FacematchError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(
    name: str,
    weights: str | None = None,
    pretrained: str | None = None,
    freeze: bool = False,
    unfreeze_last: int = 0,
    **options,
) -> "Backbone":
    """Build backbone ``name`` (the ``_target_`` of every ``conf/arch`` config).

    ``weights``: a local state-dict file; ``pretrained``: a named download (facenet-pytorch, torchvision) or
    published file; ``freeze``: train only what sits on top (the embedding head), except the last
    ``unfreeze_last`` stages; ``options``: what one backbone's own config adds (resnet50: ``template``, ``pool``).
    """
    decl = declaration(name)
    try:
        backbone = decl.build(weights or None, pretrained or None, **options)
    except TypeError as err:
        if options and "unexpected keyword" in str(err):
            raise FacematchError(f"arch.{next(iter(options))} is not an option of {name}; "
                                 f"its options are in conf/arch/{name}.yaml") from None
        raise
    backbone.weights_path = str(weights) if weights else getattr(backbone, "weights_path", None)
    if freeze:
        backbone.freeze(int(unfreeze_last))
    return backbone


def fetch_pretrained(name: str, weights: str | None = None, pretrained: str | None = None, **_) -> None:
    """Find (or download) the named pretrained weights of an ``arch`` config before anything else runs, so
    that an offline run without ``arch.weights`` stops at once with its one line, not after minutes."""
    if pretrained and not weights and name in BACKBONES:
        BACKBONES[name].pretrained_file(pretrained)


def published_weights() -> dict[str, Remote]:
    """``facematch-data download NAME`` -> the weights file facematch publishes under that name."""
    return {key: remote for decl in BACKBONES.values() for key, remote in decl.published.items()}


def default_weights(name: str) -> str | None:
    """The file ``--arch NAME`` without ``--weights`` looks for in ``$FACEMATCH_WEIGHTS_DIR`` (None: none)."""
    return declaration(name).default_weights

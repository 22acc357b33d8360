"""What a backbone module declares (torch-free, so that ``facematch-data`` lists published weights without
importing torch): :class:`BackboneDeclaration`. Each module of :mod:`facematch.models.backbones` holds one
or more in its ``DECLARATIONS``; the registry (:mod:`facematch.models.backbones`) reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from facematch.errors import FacematchError
from facematch.utils.fetch import Remote

if TYPE_CHECKING:  # the types only: building a backbone imports torch, declaring one does not
    from facematch.models.base import Backbone


@dataclass(frozen=True)
class BackboneDeclaration:
    """One backbone, as ``arch.name=NAME`` (and ``--arch NAME``) names it.

    - ``build(weights, pretrained, **options)``: the :class:`~facematch.models.base.Backbone`, random or
      loaded from ``weights`` (a local state dict; wins) or the named ``pretrained`` weights; ``options``:
      what this backbone's own ``conf/arch`` config adds;
    - ``input_size`` / ``template``: its crops (H, W) and alignment template (:mod:`facematch.faces.templates`),
      where they do not depend on ``options`` (None then: the built spec says);
    - ``pretrained``: ``arch.pretrained`` name -> a function returning its local file (fetched or downloaded
      when missing; one line naming ``arch.weights=FILE`` when it cannot be);
    - ``published``: ``facematch-data download NAME`` -> the :class:`~facematch.utils.fetch.Remote` of a
      weights file facematch fetches from its mirrors;
    - ``default_weights``: the file the practitioner commands (``--arch NAME`` without ``--weights``) look
      for in ``$FACEMATCH_WEIGHTS_DIR``.
    """

    name: str
    build: Callable[..., "Backbone"]
    summary: str
    input_size: tuple[int, int] | None = None
    template: str | None = None
    pretrained: Mapping[str, Callable[[], Path]] = field(default_factory=dict)
    published: Mapping[str, Remote] = field(default_factory=dict)
    default_weights: str | None = None

    def pretrained_file(self, name: str) -> Path:
        """The local file of ``arch.pretrained=name`` (fetched or downloaded when missing)."""
        if name not in self.pretrained:
            known = ", ".join(self.pretrained) or "none"
            raise FacematchError(f"arch.pretrained={name!r} is unknown for {self.name}; choose one of: {known} "
                                 "or null (or pass a state dict with arch.weights=FILE)")
        return self.pretrained[name]()

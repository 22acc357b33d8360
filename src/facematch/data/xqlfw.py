"""XQLFW (Cross-Quality LFW, Knoche et al. 2021) as released: ``xqlfw_pairs.txt`` (LFW ``pairs.txt`` format:
10 folds of 300 same + 300 different pairs) and ``xqlfw_aligned_112/<Name>/<Name>_NNNN.jpg`` (112x112 crops,
one image of each pair degraded by the authors). ``data=xqlfw`` (conf/data/xqlfw.yaml) reads them through the
ordinary pairs reader and prealigned crop source; this module only says, in one line, where they go when
they are missing: facematch does not fetch XQLFW.
"""

from __future__ import annotations

from pathlib import Path

from facematch.errors import DataNotFoundError

ALIGNED = "xqlfw_aligned_112"
PAIRS = "xqlfw_pairs.txt"


def ensure_xqlfw(root, pairs) -> None:
    """Stop with one line when ``root`` (an ``xqlfw_aligned_112`` folder) or ``pairs`` (an
    ``xqlfw_pairs.txt``) is named but missing; other paths are left to the ordinary checks."""
    root = Path(root) if root else None
    pairs = Path(pairs) if pairs else None
    gone = [p for p in (root, pairs) if p is not None and p.name in (ALIGNED, PAIRS) and not p.exists()]
    if gone:
        raise DataNotFoundError(
            f"XQLFW not found: no {gone[0]}. facematch does not fetch it: download {ALIGNED} and {PAIRS} from the "
            "XQLFW page (Knoche et al., Cross-Quality LFW) and unpack both into $FACEMATCH_DATA_DIR/xqlfw/, or pass "
            "data.root=FOLDER data.pairs=FILE")

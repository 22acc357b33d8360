"""The package's rooms: lower layers never import higher ones (not even inside a function), every module
has a layer, and no module is over 300 lines (``import facematch`` changing nothing: tests/integration/test_allocator.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import facematch

SRC = Path(facematch.__file__).resolve().parent

#: Lowest first (docs: ARCHITECTURE.md). A module is placed by its longest listed prefix. The calibration
#: package spans two: its store is read by models (ONNX metadata), its computation runs the eval job. The
#: alignment templates are the crop geometry a backbone declares (its template and input size): pure data
#: that imports nothing above utils, read by models as well as by faces.
LAYERS = [
    ("facematch.utils", "facematch.errors", "facematch.paths", "facematch.config"),
    ("facematch.models", "facematch.losses", "facematch.calibration.store", "facematch.faces.templates",
     "facematch.quality.head", "facematch.quality.store", "facematch.quality.discard"),
    ("facematch.faces",),
    ("facematch.embedding",),
    ("facematch.data",),
    ("facematch.lit",),
    ("facematch.eval", "facematch.calibration", "facematch.quality"),
    ("facematch.report",),
    ("facematch.app", "facematch.gallery"),
    ("facematch.cli", "facematch.train"),
]
RANK = {prefix: i for i, prefixes in enumerate(LAYERS) for prefix in prefixes}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int | None:
    matches = [p for p in RANK if module == p or module.startswith(p + ".")]
    return RANK[max(matches, key=len)] if matches else None


def imported(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            out.append((node.lineno, max(names, key=lambda n: (layer(n) is not None, len(n)))))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in out if name.startswith("facematch.")]


MODULES = sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


def test_layer_rule_sees_an_upward_import():
    assert layer("facematch.calibration.store") < layer("facematch.embedding.cache") < layer("facematch.data.shards")
    assert layer("facematch.calibration.compute") == layer("facematch.eval.job")
    assert layer("facematch.cli.compare") > layer("facematch.app.server") > layer("facematch.eval.job")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_its_layer_and_below(path):
    own = layer(module_name(path))
    assert own is not None, f"{module_name(path)} has no layer: add it to LAYERS"
    upward = [f"line {line}: {name}" for line, name in imported(path) if (layer(name) or 0) > own]
    assert not upward, f"{module_name(path)} imports a higher layer: {upward}"


def test_no_module_over_300_lines():
    long = {str(p.relative_to(SRC)): n for p in MODULES if (n := len(p.read_text(encoding="utf-8").splitlines())) > 300}
    assert not long, f"split these by what each part holds: {long}"


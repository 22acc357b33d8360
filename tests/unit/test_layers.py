"""The package's layers (docs/layout.md): lower layers never import higher ones (not even inside a function), every module
has a layer, and no module is over 300 lines (``import facematch`` changing nothing: tests/integration/test_allocator.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import facematch

SRC = Path(facematch.__file__).resolve().parent

#: Lowest first, as docs/layout.md draws them. Each entry is a package (or a module directly under facematch/),
#: and every module of a package stands at its package's layer: no module is ranked apart from its package.
LAYERS = [
    ("facematch.utils", "facematch.errors", "facematch.quiet", "facematch.paths", "facematch.config"),
    ("facematch.faces",),
    ("facematch.models", "facematch.losses", "facematch.miners"),
    ("facematch.embedding",),
    ("facematch.data",),
    ("facematch.quality",),
    ("facematch.lit",),
    ("facematch.eval", "facematch.calibration", "facematch.callbacks"),
    ("facematch.report",),
    ("facematch.app", "facematch.gallery"),
    ("facematch.cli", "facematch.train"),
]
RANK = {prefix: i for i, prefixes in enumerate(LAYERS) for prefix in prefixes}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int | None:
    """The layer of ``module``: that of its package, ``facematch.<first name>``."""
    return RANK.get(".".join(module.split(".")[:2]))


def imported(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in out if name.startswith("facematch.")]


MODULES = sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


def test_layers_rank_packages_not_modules():
    assert all(entry.count(".") == 1 for entry in RANK), "rank packages (facematch.X), not single modules"
    assert layer("facematch.calibration.store") == layer("facematch.calibration.compute") == layer("facematch.eval.job")
    assert layer("facematch.faces.templates") == layer("facematch.faces.detect") < layer("facematch.models.base")
    assert layer("facematch.models.backbones.mobilefacenet") == layer("facematch.models.onnx_file")
    assert layer("facematch.embedding.cache") < layer("facematch.data.shards") < layer("facematch.eval.job")
    assert layer("facematch.cli.compare") > layer("facematch.app.server") > layer("facematch.eval.job")


def test_layer_rule_sees_an_upward_import(tmp_path):
    low = tmp_path / "low.py"
    low.write_text("from facematch.eval.job import evaluate\nimport facematch.cli.compare\nfrom facematch.utils import io\n")
    own = layer("facematch.models.weights")
    assert [name for _, name in imported(low) if (layer(name) or 0) > own] == ["facematch.eval.job", "facematch.cli.compare"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_its_layer_and_below(path):
    own = layer(module_name(path))
    assert own is not None, f"{module_name(path)} has no layer: add it to LAYERS"
    upward = [f"line {line}: {name}" for line, name in imported(path) if (layer(name) or 0) > own]
    assert not upward, f"{module_name(path)} imports a higher layer: {upward}"


def test_no_module_over_300_lines():
    long = {str(p.relative_to(SRC)): n for p in MODULES if (n := len(p.read_text(encoding="utf-8").splitlines())) > 300}
    assert not long, f"split these by what each part holds: {long}"


"""The backbone registry (facematch.models.backbones): every module of the package is found and declares
what the rest reads (train, eval, the practitioner commands' --arch, facematch-data download); a new module
is found without listing it anywhere; reading the declarations imports no torch."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import facematch
import facematch.models.backbones as registry
from facematch.errors import FacematchError
from facematch.models.backbones import BACKBONES, build_backbone, published_weights

SRC = Path(facematch.__file__).resolve().parent
HEAVY = ("torch", "torchvision", "facenet_pytorch", "onnx", "onnxruntime", "numpy")


def test_every_backbone_module_is_registered_and_builds_what_it_declares():
    modules = sorted(p.stem for p in (SRC / "models" / "backbones").glob("*.py") if p.stem != "__init__")
    builders = [getattr(d.build, "func", d.build) for d in BACKBONES.values()]  # func: a partial's function
    owners = {b.__module__.rsplit(".", 1)[1] for b in builders}
    assert owners == set(modules) and {"mobilefacenet", "resnet50", "inception_resnet_v1"} <= set(BACKBONES)
    for name, decl in BACKBONES.items():
        assert decl.name == name and decl.summary
        if decl.input_size is None or decl.template is None:
            continue
        spec = build_backbone(name).spec
        assert (spec.name, spec.input_size, spec.template) == (name, decl.input_size, decl.template)


def test_every_arch_config_names_a_registered_backbone_and_every_module_has_one():
    from omegaconf import OmegaConf

    from facematch.config import config_dir

    nodes = [OmegaConf.load(p) for p in sorted((Path(config_dir()) / "arch").glob("*.yaml"))]
    assert all(n._target_ == "facematch.models.backbones.build_backbone" and n.name in BACKBONES for n in nodes)
    configured = {getattr(BACKBONES[n.name].build, "func", BACKBONES[n.name].build).__module__ for n in nodes}
    assert configured == {getattr(d.build, "func", d.build).__module__ for d in BACKBONES.values()}


def test_a_new_module_is_found_without_listing_it(tmp_path, monkeypatch):
    (tmp_path / "tiny_net.py").write_text(
        "from facematch.models.declaration import BackboneDeclaration\n"
        "def build(weights, pretrained):\n    raise NotImplementedError\n"
        "DECLARATIONS = (BackboneDeclaration('tiny_net', build, 'a test backbone', (8, 8), 'box_8x8'),)\n")
    monkeypatch.setattr(registry, "__path__", [*registry.__path__, str(tmp_path)])
    try:
        found = registry.discover()
    finally:
        sys.modules.pop("facematch.models.backbones.tiny_net", None)
    assert found["tiny_net"].input_size == (8, 8) and set(found) == {*BACKBONES, "tiny_net"}


def test_the_commands_read_the_registry():
    from facematch.app.model_args import add_weights_arguments, default_weights
    from facematch.cli.download import WEIGHTS

    assert WEIGHTS == published_weights() and WEIGHTS["mobilefacenet"].name == "mobilefacenet_casia_068.ckpt"
    assert BACKBONES["mobilefacenet"].default_weights == "mobilefacenet_casia_068.ckpt"
    import argparse

    p = argparse.ArgumentParser()
    add_weights_arguments(p)
    help_text = p.format_help()
    assert all(name in help_text for name in BACKBONES)
    assert default_weights("resnet50", "w.pt") == "w.pt"
    with pytest.raises(FacematchError, match="no default weights for resnet50"):
        default_weights("resnet50", None)
    with pytest.raises(FacematchError, match="unknown backbone 'vgg'; choose one of: " + ", ".join(BACKBONES)):
        build_backbone("vgg")
    with pytest.raises(FacematchError, match="arch.pretrained='imagenet' is unknown for mobilefacenet"):
        BACKBONES["mobilefacenet"].pretrained_file("imagenet")


def _module_file(name: str) -> Path | None:
    rel = SRC.parent / Path(*name.split("."))
    for candidate in (rel.with_suffix(".py"), rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_imports(path: Path) -> list[str]:
    """Modules ``path`` imports when it is read: its body's imports, not those inside functions, classes or
    ``if TYPE_CHECKING:``."""
    out: list[str] = []

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                out.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.append(node.module)
                out.extend(f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}"))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return out


def imported_when_read(*roots: str) -> set[str]:
    """Every module reached from ``roots`` by imports run at module level (packages' __init__ included)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            mod = ".".join(parts[:i])
            if mod in seen:
                continue
            seen.add(mod)
            path = _module_file(mod) if mod.startswith("facematch") else None
            if path is not None:
                todo.extend(_top_level_imports(path))
    return seen


def test_reading_the_declarations_imports_no_torch():
    reached = imported_when_read("facematch.models.backbones", "facematch.cli.data")
    modules = {f"facematch.models.backbones.{p.stem}" for p in (SRC / "models" / "backbones").glob("*.py")}
    for module in modules - {"facematch.models.backbones.__init__"}:  # what discover() imports
        reached |= imported_when_read(module)
    heavy = sorted(m for m in reached if m.split(".")[0] in HEAVY)
    assert not heavy, f"reading the backbone declarations (or facematch-data) imports {heavy}"
    assert "facematch.models.declaration" in reached and "facematch.cli.download" in reached


def test_the_torch_free_check_sees_a_module_level_import():
    assert "torch" in imported_when_read("facematch.models.base")
    assert "torch" not in imported_when_read("facematch.models.declaration")

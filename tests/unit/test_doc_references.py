"""Documented cross-references exist: every file path, module or object (``facematch.eval.job.evaluate``),
experiment name (``experiment=NAME``) and config key (``data.x.y`` in backticks or as ``key=value``) that
README.md, docs/*.md, the comments of conf/ and the docstrings and comments of src/ mention names something
the repository has. Each check also fails on a
made-up name (the ``*_is_caught`` tests), so it cannot pass by finding nothing."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest
import yaml

from facematch.utils.renamed import MOVED_NODES, RENAMED_KEYS

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
#: Where a relative path may start: its own folder, the repository, src/, the package, conf/, docs/.
ROOTS = [REPO, REPO / "src", REPO / "src" / "facematch", CONF, REPO / "docs"]
#: Files of other projects the docs cite by their own paths (never in this repository).
EXTERNAL = {
    "Code/": "the second original project's code (docs/facenet.md)",
    "sklearn/": "scikit-learn's source",
    "utilities/": "a third-party module named by a warning filter (quiet.py)",
    "recognition/": "insightface's arcface_torch, whose key names models/backbones/iresnet.py follows",
}
#: Example paths in sample output (docs/concurrency.md's gallery-lock message).
EXAMPLES = {"galleries/staff/.lock"}

PATH = re.compile(r"(?<![\w./$~{<-])((?:[\w.-]+/)+[\w.-]*\.(?:py|yaml|md|json|toml|lock|sh|png))(?![\w/])")
LINK = re.compile(r"\]\(([^)\s#:]+)(?:#[^)]*)?\)")
EXPERIMENT = re.compile(r"experiment=([\w,*-]+)")
MODULE = re.compile(r"(?<![\w.])(facematch(?:\.\w+)+)")
#: The page that lists old names beside new ones: the first column of its tables holds the old names.
OLD_NAMES_PAGE = REPO / "docs" / "configuration-changes.md"


def config_groups() -> list[str]:
    return sorted({p.name for p in CONF.iterdir() if p.is_dir()} | {"eval", "model", "hydra"})


KEY = re.compile(r"(?<![\w.$/{<-])((?:%s)\.[a-z_]\w*(?:\.[a-z_]\w*)*)(?==|``|`(?!`))" % "|".join(config_groups()))


# -- what the sources say --------------------------------------------------------------------------------
def python_text(path: Path) -> str:
    """A module's comments and docstrings (its code is checked by running it)."""
    src = path.read_text(encoding="utf-8")
    parts = [tok.string for tok in tokenize.generate_tokens(io.StringIO(src).readline) if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
    return "\n".join(parts)


def yaml_comments(path: Path) -> str:
    return "\n".join(line.split("#", 1)[1] for line in path.read_text(encoding="utf-8").splitlines() if "#" in line)


def markdown_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if path == OLD_NAMES_PAGE:  # "| old | new |" rows: the old name is history, the new one must exist
        text = "\n".join(re.sub(r"^\|[^|]*\|", "|", line) if line.startswith("|") else line for line in text.splitlines())
    return text


def sources() -> list[tuple[Path, str]]:
    out = [(p, markdown_text(p)) for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]]
    out += [(p, yaml_comments(p)) for p in sorted(CONF.rglob("*.yaml"))]
    out += [(p, python_text(p)) for p in sorted((REPO / "src").rglob("*.py"))]
    return out


# -- what exists -----------------------------------------------------------------------------------------
def experiments() -> set[str]:
    return {p.stem for p in (CONF / "experiment").glob("*.yaml")}


def config_keys() -> set[str]:
    """Every dotted key some config file sets, placed by its package (``@package _global_`` / ``@package X``
    headers, else its group): the keys a composed config can have."""
    keys: set[str] = set()

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k != "defaults":
                    keys.add(prefix + str(k))
                    walk(v, f"{prefix}{k}.")

    for path in CONF.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        header = re.match(r"#\s*@package\s+(\S+)", text)
        rel = path.relative_to(CONF)
        package = header.group(1) if header else ("_global_" if len(rel.parts) == 1 else rel.parts[0])
        walk(yaml.safe_load(text) or {}, "" if package == "_global_" else package + ".")
    return keys


def path_exists(ref: str, where: Path) -> bool:
    return any((root / ref).exists() for root in [where.parent, *ROOTS])


def is_placeholder(ref: str) -> bool:
    parts = ref.split("/")
    return (any(re.fullmatch(r"[A-Z][A-Z0-9_]*", p) for p in parts) or "NAME" in ref or "_x." in ref
            or any(c in ref for c in "*<>{}"))


# -- the checks ------------------------------------------------------------------------------------------
def missing_paths(text: str, where: Path) -> list[str]:
    refs = {m.group(1) for m in PATH.finditer(text)}
    if where.suffix == ".md":
        refs |= {m.group(1) for m in LINK.finditer(text) if not m.group(1).startswith(("http", "mailto"))}
    return sorted(r for r in refs if not (is_placeholder(r) or r in EXAMPLES or r.startswith(tuple(EXTERNAL))
                                          or path_exists(r, where)))


def missing_experiments(text: str, names: set[str]) -> list[str]:
    found = {n for m in EXPERIMENT.finditer(text) for n in m.group(1).split(",")}
    return sorted(n for n in found if n and not is_placeholder(n) and n not in names)


def missing_keys(text: str, keys: set[str]) -> list[str]:
    old = set(RENAMED_KEYS) | set(MOVED_NODES)  # documented as the old names they were

    def known(key: str) -> bool:
        if key in keys or key in old or any(k.startswith(key + ".") for k in keys):
            return True
        # a Hydra plugin's own settings under a node our config selects (hydra.launcher.partition)
        return key.startswith("hydra.") and ".".join(key.split(".")[:2]) in keys

    found = {m.group(1) for m in KEY.finditer(text)}
    return sorted(k for k in found if not re.search(r"\.(py|yaml|md|json)$", k) and not known(k))


def missing_modules(text: str) -> list[str]:
    """``facematch.a.b[.name]`` whose module (the longest prefix that is a file or package under src/) does not
    exist, or whose first name after it the module does not define or import."""
    out = []
    for ref in sorted({m.group(1) for m in MODULE.finditer(text)}):
        parts = ref.split(".")
        for n in range(len(parts), 0, -1):
            base = REPO.joinpath("src", *parts[:n])
            module = next((f for f in (base.with_suffix(".py"), base / "__init__.py") if f.is_file()), None)
            if module is not None:
                break
        if module is None or n == 1:
            out.append(ref)
        elif n < len(parts):
            name = parts[n]
            if not re.search(rf"^\s*(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]|^\s*(?:from\s+\S+\s+)?import\s+.*\b{name}\b",
                             module.read_text(encoding="utf-8"), re.M):
                out.append(ref)
    return out


SOURCES = sources()


@pytest.mark.parametrize("kind", ["paths", "modules", "experiments", "keys"])
def test_documented_references_exist(kind):
    names, keys = experiments(), config_keys()
    problems = []
    for path, text in SOURCES:
        found = {"paths": lambda: missing_paths(text, path), "experiments": lambda: missing_experiments(text, names),
                 "keys": lambda: missing_keys(text, keys), "modules": lambda: missing_modules(text)}[kind]()
        problems += [f"{path.relative_to(REPO)}: {ref}" for ref in found]
    assert not problems, f"{len(problems)} documented {kind} that do not exist:\n" + "\n".join(problems)


def test_the_checks_read_every_kind_of_source():
    kinds = {p.suffix for p, _ in SOURCES}
    assert kinds == {".md", ".yaml", ".py"}
    text = dict((p.relative_to(REPO).as_posix(), t) for p, t in SOURCES)
    assert "experiment=adapt16_stages" in text["conf/experiment/_adapt.yaml"]  # a conf comment
    assert "embed.align_raw" in text["src/facematch/eval/inputs.py"]  # a docstring
    assert "def eval_source" not in text["src/facematch/eval/inputs.py"]  # not the code


def test_a_made_up_path_is_caught():
    where = REPO / "docs" / "layout.md"
    assert missing_paths("see `eval/verification.py` and [losses](losses.md)", where) == []
    assert missing_paths("see `eval/no_such_module.py`", where) == ["eval/no_such_module.py"]
    assert missing_paths("see [the guide](no-such-page.md)", where) == ["no-such-page.md"]
    assert missing_paths("conf/loss/made_up.yaml", where) == ["conf/loss/made_up.yaml"]
    assert missing_paths("results/NAME.json OUT/manifest.json Code/train.py", where) == []  # placeholders, others'


def test_a_made_up_experiment_is_caught():
    names = experiments()
    assert missing_experiments("facematch-train -m experiment=adapt16_stages,exp1_pretrained", names) == []
    assert missing_experiments("facematch-train experiment=adapt16_made_up", names) == ["adapt16_made_up"]
    assert missing_experiments("-m experiment=adapt16_stages,probe16_dt_last5", names) == ["probe16_dt_last5"]


def test_a_made_up_config_key_is_caught():
    keys = config_keys()
    assert {"embed.precision", "data.features.originals", "arch.unfreeze_last", "loss.imprint", "margin_unit"} <= keys
    assert missing_keys("`embed.precision` and arch.unfreeze_last=5 and ``data.pk.p``", keys) == []
    assert missing_keys("set `embed.precison`", keys) == ["embed.precison"]
    assert missing_keys("data.features.made_up=true", keys) == ["data.features.made_up"]
    assert missing_keys("`data.source` `eval.align_raw`", keys) == ["data.source", "eval.align_raw"]
    assert missing_keys("`data.features.batch_size` (the old name)", keys) == []  # a renamed key's old name


def test_a_made_up_module_or_object_is_caught():
    assert missing_modules("facematch.eval.job.evaluate, facematch.embedding.engine.EngineSettings, "
                           ":mod:`facematch.report.rows`") == []
    assert missing_modules("facematch.eval.run") == ["facematch.eval.run"]  # a module that moved
    assert missing_modules("facematch.eval.job.no_such_function") == ["facematch.eval.job.no_such_function"]
    assert missing_modules("facematch.nowhere.thing") == ["facematch.nowhere.thing"]
    old_page = markdown_text(OLD_NAMES_PAGE)
    assert "facematch.eval.run" not in old_page and "facematch.miners.top_k" in old_page  # history kept apart

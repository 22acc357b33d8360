"""The README's two commands are what runs: the first is what tests/integration/test_fresh_machine.py runs
on a fresh machine (against local mirrors), the second what .ci/run runs; neither needs anything a fresh
clone lacks, and nothing makes `uv run` compile (and print) again."""

from __future__ import annotations

import re
import tomllib

from tests.helpers import REPO
from tests.mirrors import ci_commands, readme_commands

SETUP = "pip install uv && uv sync --frozen --all-extras --compile-bytecode && "


def test_the_readme_has_two_commands_sharing_the_set_up():
    main, tests = readme_commands()
    assert main.startswith(SETUP + "uv run facematch-train ") and "\n" not in main
    assert tests == SETUP + "uv run pytest"


def test_the_first_command_needs_nothing_a_fresh_clone_lacks():
    main, _ = readme_commands()
    assert "FACEMATCH_" not in main and "../shared" not in main and "arch.weights=" not in main
    assert "arch.pretrained=casia-webface" in main and "data=lfw_photos_mtcnn" in main  # both fetchable


def test_ci_runs_the_second_command_verbatim():
    assert readme_commands()[1] in ci_commands()


def test_the_fresh_machine_test_runs_the_first_command_verbatim():
    source = (REPO / "tests" / "integration" / "test_fresh_machine.py").read_text()
    assert "MAIN = readme_commands()[0]\n" in source
    assert len(re.findall(r"run_command\(MAIN, clone, env", source)) == 3  # first, second and offline runs


def test_uv_run_is_not_told_to_compile_bytecode():
    uv = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]
    assert "compile-bytecode" not in uv  # it would make every `uv run` compile and print a line

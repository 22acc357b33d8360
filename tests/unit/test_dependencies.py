"""The locked resolution (uv.lock) holds stable releases: a pre-release (aN, bN, rcN, .devN) is allowed only for
a package that has never had a stable release, listed below by name."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

LOCK = Path(__file__).resolve().parents[2] / "uv.lock"
PRE_RELEASE = re.compile(r"(a|b|rc|\.dev)\d+")
# Packages whose every release on PyPI is a pre-release (so no stable one could be locked instead).
ONLY_PRE_RELEASES = {
    "cwevals",  # wandb's evaluation helper
    "opentelemetry-exporter-http-transport",  # mlflow's tracing: OpenTelemetry's 0.xxbN series
    "opentelemetry-exporter-otlp-common",
    "opentelemetry-semantic-conventions",
}


def locked_versions() -> dict[str, list[str]]:
    versions: dict[str, list[str]] = {}
    for pkg in tomllib.loads(LOCK.read_text())["package"]:
        versions.setdefault(pkg["name"], []).append(pkg.get("version", ""))
    return versions


def test_lock_holds_no_pre_release_of_a_package_with_a_stable_release():
    versions = locked_versions()
    pre = {name: v for name, vs in versions.items() for v in vs if PRE_RELEASE.search(v)}
    assert set(pre) <= ONLY_PRE_RELEASES, {k: v for k, v in pre.items() if k not in ONLY_PRE_RELEASES}


def test_core_libraries_are_locked_at_stable_releases():
    versions = locked_versions()
    for name in ("hydra-core", "omegaconf", "torch", "lightning", "optuna"):
        assert versions.get(name), f"{name} is not in uv.lock"
        assert not any(PRE_RELEASE.search(v) for v in versions[name]), (name, versions[name])
    assert "hydra-optuna-sweeper" not in versions  # replaced by facematch's own sweeper plugin

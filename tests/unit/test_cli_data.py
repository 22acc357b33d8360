"""``facematch-data`` without data: an unreachable server is one error line, and --help lists the
subcommands. Download, prepare, verify and check-cache on real LFW files: tests/integration/test_cli_data.py."""

from __future__ import annotations

import pytest

from facematch.cli.data import main
from tests.helpers import download, error_line


def test_download_unreachable_server_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        download(tmp_path / "lfw", "http://127.0.0.1:9/", "--timeout", "5")
    err = error_line(capsys.readouterr().err)
    assert exc.value.code == 2 and err.startswith("error: could not fetch lfw-deepfunneled.tgz (http://127.0.0.1:9/: ")
    assert "check --base-url" in err


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and all(c in out for c in ("download", "prepare", "verify", "check-cache"))
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    out = capsys.readouterr().out
    assert "--pairs" in out and "--template" in out and "--cache-dir" in out
    assert "default nearest_center" in out and "conf/align/mtcnn.yaml" in out

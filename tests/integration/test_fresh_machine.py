"""The README's first command, verbatim, on a "fresh machine": a fresh copy of the working tree, an empty
home, no FACEMATCH_* variable, and local servers (127.0.0.1) standing in for the mirrors, figshare serving a
corrupted pairs.txt and no pairsDevTest.txt; facematch is pointed at them through environment variables only
(FACEMATCH_MIRROR_*, FACEMATCH_FETCH_HASHES for the subset's own archive and pairs.txt).

``uv sync`` installs from this machine's uv cache with UV_OFFLINE=1 (it downloads nothing); ``pip install
uv`` finds uv installed (PIP_NO_INDEX=1). The subset: 32 LFW people (the command's P x K batches take 16
identities; a 12-person set cannot train with the README's settings), of which two folds of 6 are in the
served pairs.txt. Then: a second run fetches nothing; with the servers down and the files gone, one line."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.helpers import DATA, WEIGHTS
from tests.mirrors import build_site, fresh_clone, fresh_env, mirror_env, readme_commands, run_command, serve, subset_pairs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("data_dir", "mfn_weights")]

MAIN = readme_commands()[0]
PEOPLE = 32


def subset_people() -> tuple[list[str], list[list[str]]]:
    """The first 32 people with 3 to 5 photos; folds 0 and 1 of the served pairs.txt are the first 12."""
    root = DATA / "lfw" / "lfw-deepfunneled"
    people = [p.name for p in sorted(root.iterdir()) if 3 <= len(list(p.glob("*.jpg"))) <= 5][:PEOPLE]
    return people, [people[:6], people[6:12]]


def test_readme_first_command_on_a_fresh_machine_fetches_aligns_trains_then_fetches_nothing(tmp_path):
    people, folds = subset_people()
    site = build_site(tmp_path / "site", DATA, WEIGHTS, people, subset_pairs(folds, DATA / "lfw" / "lfw-deepfunneled"))
    clone = fresh_clone(tmp_path / "clone")
    with serve({"figshare": site["figshare"], "umass": site["umass"]}) as servers:
        env = fresh_env(tmp_path / "home", mirror_env(servers, site["hashes"]))
        first = run_command(MAIN, clone, env, timeout=1500)
        assert first.returncode == 0, first.stderr[-4000:]
        summary = first.stdout[first.stdout.index("\nResult\n"):]
        assert re.search(r"fold 0 accuracy: [01]\.\d{4}", summary), summary
        # everything came from the servers: the corrupted / missing figshare files from UMass, after saying so
        assert "pairs.txt: figshare: wrong sha256; trying the next mirror" in first.stderr
        assert "pairsDevTest.txt: figshare: HTTP 404; trying the next mirror" in first.stderr
        assert sorted(servers["umass"].requests) == ["/gh/model/best/068.ckpt", "/lfw-deepfunneled.tgz", "/pairs.txt",
                                                     "/pairsDevTest.txt"]
        assert sorted(servers["figshare"].requests) == ["/files/5976006", "/files/5976009", "/files/5976012"]
        photos = sorted(p.name for p in (clone / "data" / "lfw" / "lfw-deepfunneled").iterdir())
        assert photos == sorted(people) and (clone / "weights" / "mobilefacenet_casia_068.ckpt").is_file()
        assert not list(clone.glob("data/lfw/*.part")) and "Traceback" not in first.stderr

        for server in servers.values():
            server.requests.clear()
        second = run_command(MAIN, clone, env, timeout=900)
        assert second.returncode == 0, second.stderr[-4000:]
        assert "\nResult\n" in second.stdout and "fetching" not in second.stderr
        assert all(not server.requests for server in servers.values())
        # a second `uv run` prints no line of uv's own (the bytecode is compiled once, by uv sync)
        uv_run = run_command("uv run python -c 'print(1)'", clone, env, timeout=300)
        assert (uv_run.returncode, uv_run.stdout, uv_run.stderr) == (0, "1\n", "")

    shutil.rmtree(clone / "data")
    shutil.rmtree(clone / "weights")
    offline = run_command(MAIN, clone, env, timeout=900)  # the servers are down
    assert offline.returncode != 0
    after_sync = offline.stderr.split("Bytecode compiled")[-1]  # uv sync's last line: then facematch's own
    lines = [line for line in after_sync.splitlines()[1:] if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), offline.stderr[-3000:]
    line = lines[0]
    for needed in ("mobilefacenet_casia_068.ckpt", "facematch-data download mobilefacenet --dest weights",
                   "FACEMATCH_WEIGHTS_DIR", "LFW (lfw-deepfunneled/", "facematch-data download lfw --dest data/lfw",
                   "FACEMATCH_DATA_DIR", "connection refused"):
        assert needed in line, line

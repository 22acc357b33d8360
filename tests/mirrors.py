"""Stand-ins for the internet, for the README's first command on a "fresh machine": local HTTP servers
(127.0.0.1 only) serving LFW and the MobileFaceNet weights in the layouts of figshare, the LFW site (UMass)
and GitHub, a fresh copy of the working tree, and the environment of a user with nothing set up.

Used by tests/integration/test_fresh_machine.py (a subset of LFW) and benchmarks/fresh_machine.py (all of it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.helpers import REPO

README = REPO / "README.md"


def readme_commands(readme: Path = README) -> list[str]:
    """The README's two commands: the first two ``bash`` blocks of its "Two commands" section."""
    text = readme.read_text()
    section = text[text.index("## Two commands"):]
    section = section[: section.index("\n## ", 4)]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)][:2]


def ci_commands(ci: Path = REPO / ".ci" / "run") -> list[str]:
    """The commands .ci/run runs (its non-comment lines, continuations joined)."""
    lines = ci.read_text().replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


# ---------------------------------------------------------------------------------------------------
# the files the mirrors serve


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def photos_tgz(lfw_root: Path, people: list[str] | None, out: Path) -> Path:
    """``lfw-deepfunneled.tgz`` of ``people`` (all of them: None) of ``lfw_root``, as the LFW site's archive."""
    people = people if people is not None else sorted(p.name for p in lfw_root.iterdir() if p.is_dir())
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        for person in people:
            for img in sorted((lfw_root / person).glob("*.jpg")):
                tar.add(img, arcname=f"lfw-deepfunneled/{person}/{img.name}", recursive=False)
    return out


def subset_pairs(people_by_fold: list[list[str]], lfw_root: Path) -> str:
    """An LFW-format pairs file over these people: per fold, two matched pairs per person (images 1-2, 1-3)
    and as many mismatched ones (each person's image 1 with the next person's image 2)."""
    lines = []
    n = 2 * len(people_by_fold[0])
    for people in people_by_fold:
        assert all(len(list((lfw_root / p).glob("*.jpg"))) >= 3 for p in people) and 2 * len(people) == n
        lines += [f"{p}\t1\t{j}" for p in people for j in (2, 3)]
        lines += [f"{a}\t1\t{b}\t{j}" for i, a in enumerate(people)
                  for b, j in ((people[(i + 1) % len(people)], 2), (people[(i + 2) % len(people)], 3))]
    return f"{len(people_by_fold)}\t{n}\n" + "\n".join(lines) + "\n"


def build_site(out: Path, data: Path, weights: Path, people: list[str] | None = None,
               pairs_text: str | None = None, bad_figshare: bool = True) -> dict:
    """Two web folders, ``figshare/`` (files/<id>, sklearn's ids) and ``umass/`` (the LFW site's names, and
    ``gh/model/best/068.ckpt`` standing in for GitHub), plus ``hashes.txt`` (FACEMATCH_FETCH_HASHES) for the
    files that differ from the published ones (the archive; ``pairs_text`` in place of pairs.txt).
    ``bad_figshare``: figshare serves a corrupted pairs.txt and no pairsDevTest.txt (a 404)."""
    from facematch.data.lfw_files import LFW_ARCHIVES, LFW_PAIRS
    from facematch.models.backbones import published_weights

    MOBILEFACENET_CASIA = published_weights()["mobilefacenet"]

    figshare, umass = out / "figshare", out / "umass"
    for d in (figshare, umass):
        d.mkdir(parents=True, exist_ok=True)
    archive = photos_tgz(data / "lfw" / "lfw-deepfunneled", people, umass / "lfw-deepfunneled.tgz")
    hashes = {"lfw-deepfunneled.tgz": sha256(archive.read_bytes())}
    for name, remote in LFW_PAIRS.items():
        body = (data / "lfw" / name).read_bytes()
        if name == "pairs.txt" and pairs_text is not None:
            body = pairs_text.encode()
            hashes[name] = sha256(body)
        (umass / name).write_bytes(body)
        fig = figshare / dict(remote.sources)["figshare"]
        fig.parent.mkdir(parents=True, exist_ok=True)
        if bad_figshare and name == "pairs.txt":
            fig.write_bytes(body[:-10] + b"corrupted\n")
        elif not (bad_figshare and name == "pairsDevTest.txt"):
            fig.write_bytes(body)
    gh = umass / "gh" / dict(MOBILEFACENET_CASIA.sources)["github"]
    gh.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights / MOBILEFACENET_CASIA.name, gh)
    (out / "hashes.txt").write_text("".join(f"{k} {v}\n" for k, v in hashes.items()))
    assert set(LFW_ARCHIVES) >= set(hashes) - set(LFW_PAIRS)
    return {"figshare": figshare, "umass": umass, "hashes": out / "hashes.txt"}


# ---------------------------------------------------------------------------------------------------
# the servers


class LoggingHandler(SimpleHTTPRequestHandler):
    """Static files, with ``Range: bytes=N-`` honoured; each request's path (and range) is appended to the
    server's ``requests`` list; quiet."""

    def do_GET(self):
        rng = self.headers.get("Range")
        self.server.requests.append(self.path + (f" {rng}" if rng else ""))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(rng[len("bytes="):-1]) if rng and rng.startswith("bytes=") and rng.endswith("-") else 0
        if start >= len(data) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folders: dict[str, Path]):
    """One server per folder on 127.0.0.1; yields ``{name: server}`` (``server.url``, ``server.requests``)."""
    servers = {}
    try:
        for name, folder in folders.items():
            httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(LoggingHandler, directory=str(folder)))
            httpd.requests, httpd.url = [], f"http://127.0.0.1:{httpd.server_address[1]}/"
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            servers[name] = httpd
        yield servers
    finally:
        for httpd in servers.values():
            httpd.shutdown()
            httpd.server_close()


def mirror_env(servers: dict, hashes: Path) -> dict[str, str]:
    """The variables that point facematch at the local servers (and nothing else)."""
    return {"FACEMATCH_MIRROR_FIGSHARE": servers["figshare"].url, "FACEMATCH_MIRROR_UMASS": servers["umass"].url,
            "FACEMATCH_MIRROR_GITHUB": servers["umass"].url + "gh/", "FACEMATCH_FETCH_HASHES": str(hashes)}


# ---------------------------------------------------------------------------------------------------
# a fresh machine


def fresh_clone(dest: Path) -> Path:
    """The working tree's files as a fresh clone has them (tracked and untracked-but-not-ignored): no
    .venv, data, weights, caches or outputs."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def fresh_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """A user with nothing set up: an empty home, no FACEMATCH_* variables, Python, pip and uv on PATH.
    ``UV_CACHE_DIR`` is this machine's uv cache and ``UV_OFFLINE=1``: ``uv sync`` installs from the cache
    and downloads nothing (the test would fail if it had to)."""
    uv_cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    python_bin = Path(sys.base_prefix) / "bin"
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TZ", "PYTHONDONTWRITEBYTECODE")}
    home.mkdir(parents=True, exist_ok=True)
    return {**keep, "HOME": str(home), "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
            "UV_CACHE_DIR": uv_cache, "UV_OFFLINE": "1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "UV_COMPILE_BYTECODE_TIMEOUT": "600", **extra}


def run_command(command: str, cwd: Path, env: dict, timeout: int, nice: int = 0) -> subprocess.CompletedProcess:
    """``bash -c COMMAND`` as a user types it, in its own process group: past ``timeout`` the whole group
    (uv, facematch-train and its workers) is killed and ``subprocess.TimeoutExpired`` carries what it printed."""
    argv = ["bash", "-c", command]
    if nice:
        argv = ["nice", "-n", str(nice), *argv]
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(argv, timeout, out, err) from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)

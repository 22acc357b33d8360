"""Fetching published files (LFW, pretrained weights) with pooch: a known hash per file, several mirrors
tried in turn, resumable transfers, a progress bar.

A :class:`Remote` names a file, its published hash (``sha256`` hex, or ``md5:HEX`` where only an md5 is
published) and where it lives: ``(mirror, path)`` pairs, the URL being the mirror's base URL + path.
:data:`MIRRORS` holds the base URLs; ``FACEMATCH_MIRROR_<NAME>`` (e.g. ``FACEMATCH_MIRROR_FIGSHARE``)
replaces one. ``FACEMATCH_FETCH_HASHES=FILE`` (lines ``name hash``, pooch's registry format) replaces the
published hash of the files it names: for a mirror serving another build of them (a subset, a test).

pooch checks the hash and moves the file into place only when it matches; the transfer itself is
:class:`ResumingDownloader`'s (pooch's own downloader starts over after an interruption): it writes to
``<name>.part`` beside the file and continues it with an HTTP ``Range`` request. A mirror that cannot be
reached, answers with an error or serves a file whose hash does not match is left for the next one; when
none gives the file, :class:`FetchError` says what each mirror answered.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from facematch.errors import FacematchError

#: Base URLs of the places files are fetched from; ``FACEMATCH_MIRROR_<NAME>`` replaces one.
MIRRORS = {
    "figshare": "https://ndownloader.figshare.com/",  # scikit-learn's LFW mirror (sklearn/datasets/_lfw.py)
    "umass": "http://vis-www.cs.umass.edu/lfw/",  # the LFW site
    # the public MobileFaceNet_Pytorch repository, at the commit that added model/best/068.ckpt
    "github": "https://raw.githubusercontent.com/Xiaoccer/MobileFaceNet_Pytorch/"
              "9c6e162647edf1bdc1d194f305d2030c79bf4613/",
}
HASHES_ENV = "FACEMATCH_FETCH_HASHES"
CHUNK = 1 << 20


def mirror_env(mirror: str) -> str:
    return f"FACEMATCH_MIRROR_{mirror.upper()}"


def mirror_url(mirror: str) -> str:
    base = os.environ.get(mirror_env(mirror)) or MIRRORS[mirror]
    return base if base.endswith("/") else base + "/"


@dataclass(frozen=True)
class Remote:
    """A published file: its name on disk, its published hash, and ``(mirror, path)`` per source."""

    name: str
    hash: str
    sources: tuple[tuple[str, str], ...]

    def urls(self, base_url: str | None = None) -> list[tuple[str, str]]:
        """``(mirror, url)`` in the order tried; ``base_url`` (``--base-url``) replaces them all with
        ``base_url + name``."""
        if base_url:
            return [(base_url, (base_url if base_url.endswith("/") else base_url + "/") + self.name)]
        return [(mirror, mirror_url(mirror) + path) for mirror, path in self.sources]

    def known_hash(self) -> str:
        """The published hash, unless ``FACEMATCH_FETCH_HASHES`` names this file."""
        return hash_overrides().get(self.name, self.hash)


def hash_overrides() -> dict[str, str]:
    path = os.environ.get(HASHES_ENV)
    if not path:
        return {}
    try:
        lines = Path(path).expanduser().read_text().splitlines()
    except OSError as err:
        raise FacematchError(f"{HASHES_ENV}={path} cannot be read ({err.strerror}); point it at a 'name hash' file or unset it") from None
    pairs = [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if any(len(p) != 2 for p in pairs):
        raise FacematchError(f"{HASHES_ENV}={path}: every line must be 'name hash'; fix the file or unset it")
    return dict(pairs)


class FetchError(FacematchError):
    """No mirror gave the file; ``reasons`` holds ``mirror: why`` per mirror, ``offline`` whether none
    could be reached at all (as opposed to answering with an error or a wrong file)."""

    def __init__(self, name: str, reasons: list[str], offline: bool):
        self.name, self.reasons, self.offline = name, reasons, offline
        super().__init__(f"could not fetch {name} ({'; '.join(reasons)})")


class ResumingDownloader:
    """A pooch downloader that continues ``part`` with an HTTP Range request, then hands it to pooch
    (which checks the hash and renames it into place)."""

    def __init__(self, part: Path, progress: bool = True, timeout: float = 60.0):
        self.part, self.progress, self.timeout = part, progress, timeout

    def __call__(self, url: str, output_file, pooch=None, check_only: bool = False):
        import requests

        if check_only:
            return requests.head(url, timeout=self.timeout, allow_redirects=True).ok
        start = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"User-Agent": "facematch", **({"Range": f"bytes={start}-"} if start else {})}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as resp:
            if not (resp.status_code == 416 and start):  # 416: nothing left to send, the .part is whole
                resp.raise_for_status()
                resumed = bool(start) and resp.status_code == 206 and \
                    resp.headers.get("Content-Range", "").startswith(f"bytes {start}-")
                start = start if resumed else 0
                print(f"fetching {self.part.name.removesuffix('.part')} from {url}"
                      + (f" (resuming at {start} bytes)" if start else ""), file=sys.stderr)
                length = resp.headers.get("Content-Length")
                total = start + int(length) if length and length.isdigit() else None
                bar = self._bar(total, start) if self.progress else None
                try:
                    with open(self.part, "ab" if resumed else "wb") as fh:
                        for block in resp.iter_content(CHUNK):
                            fh.write(block)
                            if bar is not None:
                                bar.update(len(block))
                        fh.flush()
                        os.fsync(fh.fileno())
                finally:
                    if bar is not None:
                        bar.close()
                if total is not None and self.part.stat().st_size != total:
                    raise OSError(f"stopped at {self.part.stat().st_size} of {total} bytes; run again to resume")
        os.replace(self.part, output_file)

    def _bar(self, total, initial):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=self.part.name.removesuffix(".part"),
                    file=sys.stderr, leave=False)


def fetch_file(remote: Remote, folder: Path, progress: bool = True, timeout: float = 60.0,
               base_url: str | None = None, known_hash: str | None = None) -> Path:
    """``folder/remote.name``, fetched from the first mirror that gives a file with the right hash (one
    already there with that hash is kept); :class:`FetchError` when none does. ``known_hash`` replaces
    the published hash (``--sha256``)."""
    import pooch
    import requests

    pooch.get_logger().setLevel(logging.WARNING)  # its "Downloading ..." notes: ours says it once
    folder.mkdir(parents=True, exist_ok=True)
    expected = known_hash or remote.known_hash()
    part = folder / f"{remote.name}.part"
    reasons, reached = [], False
    urls = remote.urls(base_url)
    for n, (mirror, url) in enumerate(urls, 1):
        try:
            return Path(pooch.retrieve(url, expected, fname=remote.name, path=folder, progressbar=False,
                                       downloader=ResumingDownloader(part, progress, timeout)))
        except ValueError as err:  # pooch: the hash does not match (the file is not kept)
            if "hash" not in str(err).lower():
                raise
            why = f"wrong {'md5' if expected.startswith('md5:') else 'sha256'}"
            part.unlink(missing_ok=True)
        except requests.HTTPError as err:
            why = f"HTTP {err.response.status_code}"
        except (requests.ConnectionError, requests.Timeout) as err:
            reasons.append(f"{mirror}: {_short(err)}")  # unreachable: named only in the error, if it comes
            continue
        except (requests.RequestException, OSError) as err:
            why = str(err) if type(err) is OSError else _short(err)
        reached = True
        reasons.append(f"{mirror}: {why}")
        if n < len(urls):
            print(f"{remote.name}: {mirror}: {why}; trying the next mirror", file=sys.stderr)
    raise FetchError(remote.name, reasons, offline=not reached)


def _short(err: Exception) -> str:
    """A connection error's cause in a few words (requests nests the socket error several levels deep)."""
    text = str(err)
    for marker in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "timed out", "Network is unreachable", "No route to host"):
        if marker in text:
            return marker.lower()
    return type(err).__name__

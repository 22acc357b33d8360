"""LFW's published files, where each lives, and fetching what a run needs when it is not there.

Every LFW file is fetched from figshare (scikit-learn's mirror, ``sklearn/datasets/_lfw.py``: its URLs and
sha256) first and the LFW site at UMass second, except ``lfw-deepfunneled.tgz``, which only UMass publishes
(its md5 is the one torchvision's LFW dataset checks; no sha256 is published). The data options that read
photos (``data=lfw_photos_mtcnn``, the main command's, and ``lfw_photos``) use the deep-funneled photos:
they are the form every photo result of the project was measured on and the one the development machines
hold; MTCNN aligns them onto the backbone's template either way.

:func:`ensure_lfw` is what ``facematch-train`` and ``facematch-eval`` call first: when the photos or the
pairs file a config names are LFW's standard layout under the data folder (``$FACEMATCH_DATA_DIR/lfw``,
default ``./data/lfw``) and are missing, it fetches and extracts them there; anything present is not touched.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from facematch.errors import DataNotFoundError
from facematch.paths import data_dir
from facematch.utils.archives import safe_extract
from facematch.utils.fetch import FetchError, Remote, fetch_file
from facematch.utils.locks import folder_lock

_BOTH = ("figshare", "umass")
_FIGSHARE = {"lfw.tgz": "files/5976018", "lfw-funneled.tgz": "files/5976015", "pairs.txt": "files/5976006",
             "pairsDevTrain.txt": "files/5976012", "pairsDevTest.txt": "files/5976009"}


def _remote(name: str, digest: str, mirrors=_BOTH) -> Remote:
    return Remote(name, digest, tuple((m, _FIGSHARE[name] if m == "figshare" else name) for m in mirrors))


#: The archives: name -> (the folder it extracts to, the Remote).
LFW_ARCHIVES = {
    "lfw-deepfunneled.tgz": ("lfw-deepfunneled", _remote("lfw-deepfunneled.tgz", "md5:68331da3eb755a505a502b5aacb3c201", ("umass",))),
    "lfw.tgz": ("lfw", _remote("lfw.tgz", "055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0")),
    "lfw-funneled.tgz": ("lfw_funneled", _remote("lfw-funneled.tgz", "b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a")),
}
DEFAULT_ARCHIVE = "lfw-deepfunneled.tgz"
#: The protocol files, with their published sha256.
LFW_PAIRS = {r.name: r for r in (
    _remote("pairs.txt", "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"),
    _remote("pairsDevTrain.txt", "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa"),
    _remote("pairsDevTest.txt", "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c"),
)}
#: How long a run waits for another one fetching into the same folder.
LOCK_WAIT_S = 3600.0
#: The reference crops of data=lfw_aligned112: no facematch command can fetch them.
ALIGNED_112 = "lfw-aligned-112"


def download_command(dest: Path) -> str:
    return f"facematch-data download lfw --dest {dest}"


def fetch_lfw(dest: Path, archive: str = DEFAULT_ARCHIVE, progress: bool = True, timeout: float = 60.0,
              base_url: str | None = None, sha256: str | None = None, extract: bool = True) -> tuple[dict, list]:
    """The archive and the three pairs files into ``dest`` (each checked against its hash), then the
    archive extracted there; returns ``({file: path}, [extracted folders])``."""
    files = {archive: fetch_file(LFW_ARCHIVES[archive][1], dest, progress, timeout, base_url, sha256)}
    for remote in LFW_PAIRS.values():
        files[remote.name] = fetch_file(remote, dest, progress, timeout, base_url)
    return files, (safe_extract(files[archive], dest) if extract else [])


def ensure_lfw(root, pairs=None, progress: bool = True) -> None:
    """Fetch LFW into ``$FACEMATCH_DATA_DIR/lfw`` when ``root`` (an LFW photo folder there) or ``pairs`` (a
    pairs file there) is missing; stop with one line when it cannot. Other paths are left to the data
    module's own checks, except the reference crops, whose line names an option that does not need them."""
    lfw = data_dir() / "lfw"
    root = Path(root) if root else None
    pairs = Path(pairs) if pairs else None
    if root is not None and root == data_dir() / ALIGNED_112 and not root.is_dir():
        raise DataNotFoundError(
            f"the reference crops of data=lfw_aligned112 are not in {root}: they come from insightface's lfw.bin, "
            "which facematch cannot fetch; set FACEMATCH_DATA_DIR to a folder holding lfw-aligned-112/, or use "
            "data=lfw_photos_mtcnn (LFW photos facematch fetches and aligns itself)")
    folders = {folder: name for name, (folder, _) in LFW_ARCHIVES.items()}
    need_photos = root is not None and root.parent == lfw and root.name in folders and not root.is_dir()
    need_pairs = pairs is not None and pairs.parent == lfw and pairs.name in LFW_PAIRS and not pairs.is_file()
    if not (need_photos or need_pairs):
        return
    archive = folders[root.name] if need_photos else None
    what = f"LFW ({root.name}/ and the pairs files)" if need_photos else f"LFW's {pairs.name}"
    t0 = time.perf_counter()
    try:
        # one fetcher at a time (the jobs of a local multirun, DDP ranks): the others wait, then find it there
        with folder_lock(lfw, timeout=LOCK_WAIT_S, what="facematch", fix="wait for the other run's fetch, then run again"):
            if need_photos and not root.is_dir():
                fetch_lfw(lfw, archive, progress)
            elif need_pairs and not pairs.is_file():
                fetch_file(LFW_PAIRS[pairs.name], lfw, progress)
            else:
                return
    except FetchError as err:
        cmd = download_command(lfw) + (f" --archive {archive}" if archive and archive != DEFAULT_ARCHIVE else "")
        raise DataNotFoundError(
            f"{what} is not in {lfw}/ and could not be fetched ({'; '.join(err.reasons)}); run `{cmd}` where "
            "there is internet, or set FACEMATCH_DATA_DIR to a folder holding lfw/ with it") from None
    print(f"fetched {what} into {lfw} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

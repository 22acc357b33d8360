"""Weight files: loading state dicts (always ``weights_only=True``), matching them to a network, and the
named downloads (facenet-pytorch's, torchvision's ImageNet) with the one line an offline run gets.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from facematch.errors import FacematchError, WeightsError
from facematch.paths import weights_dir
from facematch.utils.fetch import FetchError, fetch_file
from facematch.utils.locks import folder_lock
from facematch.models.published_weights import MOBILEFACENET_CASIA, MOBILEFACENET_PRETRAINED  # noqa: F401


def torch_load_weights(p: Path, what: str, fix: str, mmap: bool = False):
    """``torch.load(p, weights_only=True)`` on CPU (``mmap``: tensors mapped, not read, for a zip-format file);
    any failure (a pickle of anything but tensors and plain data, so no code from the file runs; a truncated
    or non-checkpoint file) becomes one :class:`WeightsError` line: "cannot load <what> <file>: <cause>; <fix>".
    A zip-format file must be what ``torch.save`` writes: every entry stored (no compression bomb)."""
    import zipfile

    try:
        zipped = zipfile.is_zipfile(p)
        if zipped:
            with zipfile.ZipFile(p) as zf:
                entries = zf.infolist()
            if any(e.compress_type != zipfile.ZIP_STORED for e in entries) or \
                    sum(e.file_size for e in entries) > os.path.getsize(p):
                raise ValueError("a zip archive with compressed entries, which torch.save never writes")
        return torch.load(p, map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except Exception as err:
        raise WeightsError(f"cannot load {what} {p}: {_load_failure(err)}; {fix}") from None


def _load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words (torch's own message says to retry
    with ``weights_only=False``: never an option for a file from elsewhere)."""
    text = str(err).strip()
    if "WeightsUnpickler error:" in text:
        cause = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0].split(" was not an allowed")[0]
        return f"it pickles more than tensors and plain data ({cause[:120]}), and facematch loads only weights"
    return text.splitlines()[0][:160] if text else type(err).__name__


def check_checkpoint(path: str | os.PathLike, fix: str) -> None:
    """Refuse (one :class:`WeightsError` line) a checkpoint that ``weights_only=True`` cannot load, before
    Lightning reads it to resume a run (its own refusal would be a traceback); tensors are mapped, not read."""
    torch_load_weights(Path(path).expanduser(), "checkpoint", fix, mmap=True)


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict (or a checkpoint holding one under a known key) with ``weights_only=True``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p} (check arch.weights=PATH)")
    obj = torch_load_weights(p, "weights from", "pass a PyTorch state-dict file")
    for key in ("net_state_dict", "state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{p} holds no state dict of tensors; pass a PyTorch state-dict file")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_strict(net: nn.Module, state: dict[str, torch.Tensor], source: str, ignore_prefixes=()) -> None:
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore_prefixes))}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shape:
        def few(keys):
            return ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else "")

        raise WeightsError(
            f"{source} does not match {type(net).__name__}: {len(missing)} missing ({few(missing)}), "
            f"{len(unexpected)} unexpected ({few(unexpected)}), {len(shape)} of wrong shape ({few(shape)}); "
            "pass weights of this architecture"
        )
    net.load_state_dict(state, strict=True)


FACENET_URLS = {
    "vggface2": "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
    "casia-webface": "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180408-102900-casia-webface.pt",
}


def cached_download(url: str, what: str, fix: str, folder: Path, timeout_s: float = 20.0) -> Path:
    """The file of ``url`` in ``folder`` (where its library caches it), downloading it (bounded by a
    timeout) when missing. Offline, one :class:`WeightsError` line: "could not download <what> (<cause>); <fix>"."""
    target = folder / os.path.basename(url)
    if target.is_file():
        return target
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as err:
        raise WeightsError(f"could not download {what} ({type(err).__name__}); {fix}") from None
    finally:
        socket.setdefaulttimeout(old)
    return target


# The offline alternative every "no pretrained weights" message names (README's main command).
OFFLINE_COMMAND = ("facematch-train arch=mobilefacenet arch.weights=$FACEMATCH_WEIGHTS_DIR/mobilefacenet_casia_068.ckpt "
                   "arch.freeze=true loss=triplet data=lfw_photos_mtcnn data.test_fold=0 trainer.max_epochs=1")


def facenet_pretrained_file(name: str, timeout_s: float = 20.0) -> Path:
    """The cached facenet-pytorch weights file (where facenet-pytorch caches it: ``$TORCH_HOME/checkpoints``),
    downloading it (bounded by a timeout) when missing. Offline, one line naming ``arch.weights=FILE`` and
    the command that trains offline."""
    if name not in FACENET_URLS:
        raise FacematchError(
            f"arch.pretrained={name!r} is unknown; choose vggface2, casia-webface or null"
        )
    url = FACENET_URLS[name]
    return cached_download(
        url, f"the {name} Inception-ResNet-v1 weights",
        f"fetch {url} on a machine with internet and pass arch.weights=FILE, or train offline with: {OFFLINE_COMMAND}",
        Path(torch.hub.get_dir()).parent / "checkpoints", timeout_s)




def mobilefacenet_pretrained_file(name: str, progress: bool = True) -> Path:
    """``$FACEMATCH_WEIGHTS_DIR/<file>`` of a named MobileFaceNet checkpoint, fetched there when missing (one
    line naming the command and the variable when it cannot be)."""
    if name not in MOBILEFACENET_PRETRAINED:
        raise FacematchError(f"arch.pretrained={name!r} is unknown for mobilefacenet; choose "
                             f"{', '.join(MOBILEFACENET_PRETRAINED)} or null (or pass arch.weights=PATH)")
    remote = MOBILEFACENET_PRETRAINED[name]
    target = weights_dir() / remote.name
    if target.is_file():
        return target
    try:
        with folder_lock(weights_dir(), timeout=3600, what="facematch", fix="wait for the other run's fetch, then run again"):
            return target if target.is_file() else fetch_file(remote, weights_dir(), progress)
    except FetchError as err:
        raise WeightsError(
            f"the MobileFaceNet {name} weights are not in {weights_dir()}/ and could not be fetched "
            f"({'; '.join(err.reasons)}); run `facematch-data download mobilefacenet --dest {weights_dir()}` where "
            f"there is internet, or set FACEMATCH_WEIGHTS_DIR to a folder holding {remote.name}") from None


def fetch_pretrained(name: str, weights: str | None = None, pretrained: str | None = None, **_) -> None:
    """Find (or download) the named pretrained weights of an ``arch`` config before anything else runs, so
    that an offline run without ``arch.weights`` stops at once with its one line, not after minutes."""
    if pretrained and not weights and name in PRETRAINED_FILES:
        PRETRAINED_FILES[name](pretrained)


def _imagenet_file(pretrained: str) -> Path | None:
    from facematch.models.resnet import imagenet_file

    return imagenet_file() if pretrained == "imagenet" else None


PRETRAINED_FILES: dict[str, Callable[[str], Path | None]] = {
    "inception_resnet_v1": facenet_pretrained_file, "resnet50": _imagenet_file,
    "mobilefacenet": mobilefacenet_pretrained_file,
}

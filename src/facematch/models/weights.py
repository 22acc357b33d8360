"""Weight files: loading state dicts (always ``weights_only=True``), matching them to a network, and getting
a backbone's named weights (a library's download, or a file facematch publishes from its mirrors) with the
one line an offline run gets. Which weights a backbone has: its module in :mod:`facematch.models.backbones`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
import torch
from torch import nn

from facematch.errors import WeightsError
from facematch.paths import weights_dir
from facematch.utils.fetch import FetchError, Remote, fetch_file
from facematch.utils.locks import folder_lock


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


def published_file(remote: Remote, what: str, download: str, progress: bool = True) -> Path:
    """``$FACEMATCH_WEIGHTS_DIR/<file>`` of a weights file facematch publishes (``remote``), fetched there when
    missing (one line naming ``facematch-data download <download>`` and the variable when it cannot be)."""
    target = weights_dir() / remote.name
    if target.is_file():
        return target
    try:
        with folder_lock(weights_dir(), timeout=3600, what="facematch", fix="wait for the other run's fetch, then run again"):
            return target if target.is_file() else fetch_file(remote, weights_dir(), progress)
    except FetchError as err:
        raise WeightsError(
            f"the {what} weights are not in {weights_dir()}/ and could not be fetched "
            f"({'; '.join(err.reasons)}); run `facematch-data download {download} --dest {weights_dir()}` where "
            f"there is internet, or set FACEMATCH_WEIGHTS_DIR to a folder holding {remote.name}") from None

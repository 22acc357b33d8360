"""Running an ONNX model with onnxruntime: :class:`OnnxModule`.

:class:`OnnxModule` is a torch module whose forward runs an onnxruntime session, so the
:class:`~facematch.embedding.embedder.Embedder` (and everything above it) calls it like any backbone. It
keeps the serialized model, not a session: the session is opened on first use, for the device of the
input (``CUDAExecutionProvider`` for CUDA inputs when onnxruntime has it, otherwise the CPU) with as many
intra-op threads as torch has then (the Embedder sets torch's threads for the job; onnxruntime has its own
pool, which would otherwise take every core beside the crop-decoding workers). Copies (``deepcopy``, what
:mod:`facematch.models.inference` makes) share the bytes and open their own session.

Reading a model file into an :class:`~facematch.models.base.EvalModel` that runs here: :mod:`.onnx_file`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from facematch.errors import WeightsError

log = logging.getLogger(__name__)



def session_options(threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads or torch.get_num_threads()))
    opts.inter_op_num_threads = 1
    # no busy-waiting between runs: the pool shares its cores with the crop decoders and the torch pool
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def providers_for(device_type: str) -> list[str]:
    import onnxruntime as ort

    if device_type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModule(nn.Module):
    """NCHW float batch -> (N, D) float32 features, computed by onnxruntime on ``model_bytes``.

    ``fingerprint`` (the exported weights' sha256) is kept as a buffer, so the module's state dict, which
    the Embedder hashes into its embedding-cache key when it is given no fingerprint, differs per model."""

    def __init__(self, model_bytes: bytes, fingerprint: str = "", name: str = "onnx model", bgr: bool = False):
        super().__init__()
        self.model_bytes = model_bytes
        self.name = name
        self.bgr = bgr  # the model takes BGR: the RGB batch's channels are swapped before it runs
        self.register_buffer("fingerprint", torch.tensor(list(fingerprint.encode()), dtype=torch.uint8))
        self._sessions: dict[str, Any] = {}

    def __deepcopy__(self, memo):
        return OnnxModule(self.model_bytes, bytes(self.fingerprint.tolist()).decode(), self.name, self.bgr)

    def session(self, device_type: str = "cpu"):
        """The onnxruntime session for inputs on ``device_type``, opened on first use."""
        if device_type not in self._sessions:
            import onnxruntime as ort

            opts = session_options()
            try:
                sess = ort.InferenceSession(self.model_bytes, opts, providers=providers_for(device_type))
            except Exception as err:  # onnxruntime's own errors (a graph it cannot run)
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise WeightsError(f"onnxruntime cannot open {self.name}: {first}; re-export it with facematch-export") from None
            self._sessions[device_type] = sess
            log.info("onnxruntime session for %s: %s, %d threads", self.name, sess.get_providers()[0],
                     opts.intra_op_num_threads)
        return self._sessions[device_type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sess = self.session(x.device.type)
        if self.bgr:
            x = x.flip(1)
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = sess.run(None, {sess.get_inputs()[0].name: arr})[0]
        return torch.from_numpy(out).to(x.device)

"""What the pickle of a validation file may build (see :mod:`facematch.data.bin_pickle`): its node types,
and the calls it may make, each accepted only with exactly the arguments insightface's writers and numpy
pass, and turned into plain ``bytes`` or bools here (numpy is never called)."""

from __future__ import annotations


class PickleRefused(ValueError):
    """The stream is not a validation file's pickle, or it exceeds a :class:`Limits` value; one line."""


def shown(text, n: int = 60) -> str:
    """``text`` from a file, safe to print inside one line: escaped (no newline, no control character)
    and cut to ``n`` characters."""
    s = text if isinstance(text, str) and text.isascii() and text.isprintable() else ascii(text)
    return s if len(s) <= n else s[: n - 3] + "..."


class Seq:
    """A list or tuple of the file; ``frozen`` once it is inside another container (pickle's writers fill
    a list before placing it, so a later append is refused and ``depth`` stays exact)."""

    __slots__ = ("items", "is_list", "depth", "frozen")

    def __init__(self, items: list, is_list: bool, depth: int = 1):
        self.items, self.is_list, self.depth, self.frozen = items, is_list, depth, False


class Global:
    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind


class Dtype:
    __slots__ = ("code", "built")

    def __init__(self, code: str):
        self.code, self.built = code, False


class Array:
    """A 1-D numpy array of the file, kept as its raw bytes (``code`` ``"u1"`` or ``"b1"``); ``data`` is None
    until ``BUILD`` gives it (the ``_reconstruct`` path)."""

    __slots__ = ("code", "data")

    def __init__(self, code: str | None = None, data: bytes | None = None):
        self.code, self.data = code, data


_NUMPY = ("numpy.core.multiarray", "numpy._core.multiarray")
GLOBALS = {
    ("_codecs", "encode"): "encode", ("__builtin__", "bytes"): "bytes", ("builtins", "bytes"): "bytes",
    ("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer", ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    **{(m, "_reconstruct"): "reconstruct" for m in _NUMPY}, **{(m, "scalar"): "scalar" for m in _NUMPY},
}
_SHOWN = {"encode": "_codecs.encode", "bytes": "bytes", "dtype": "numpy.dtype", "frombuffer": "numpy's _frombuffer",
          "reconstruct": "numpy's _reconstruct", "scalar": "numpy's scalar", "ndarray": "numpy.ndarray"}
_DTYPES = ("u1", "b1")  # uint8 (encoded image bytes) and bool (issame)
_DTYPE_STATE = (3, "|", None, None, None, -1, -1, 0)  # what numpy pickles for both (no fields, no flags)
def _as_text(x):
    """A name or code given as ``str`` (Python 3) or ``bytes`` (Python 2's ``str`` read as bytes)."""
    if isinstance(x, bytes):
        try:
            return x.decode("ascii")
        except UnicodeDecodeError:
            return None
    return x if isinstance(x, str) else None


def _is_bool(x, value: bool) -> bool:
    return x is value or (type(x) is int and x == int(value))


def tuple_items(x, n: int) -> list | None:
    return x.items if isinstance(x, Seq) and not x.is_list and len(x.items) == n else None


def _shape1(x) -> int | None:
    """``n`` of a 1-D shape ``(n,)``, else None."""
    t = tuple_items(x, 1)
    return t[0] if t is not None and type(t[0]) is int and t[0] >= 0 else None


def _array(code: str, data, n) -> Array:
    if not isinstance(data, bytes) or n is None or len(data) != n:
        raise PickleRefused("holds a numpy array whose shape and data disagree, or that is not 1-D")
    if code == "b1" and data.strip(b"\x00\x01"):
        raise PickleRefused("holds a bool array with bytes other than 0 and 1")
    return Array(code, data)


def call(kind: str, args):
    """What a recognised call of the file gives, from exactly the arguments its writers pass."""
    a = args.items if isinstance(args, Seq) and not args.is_list else None
    if a is None:
        raise PickleRefused("calls with arguments that are not a tuple")
    if kind == "encode" and len(a) == 2 and isinstance(a[0], str) and a[1] in ("latin1", "latin-1"):
        try:
            return a[0].encode("latin-1")
        except UnicodeEncodeError:
            raise PickleRefused("encodes text that is not latin-1") from None
    if kind == "bytes" and not a:
        return b""
    if kind == "dtype" and len(a) == 3 and _as_text(a[0]) in _DTYPES and _is_bool(a[1], False) and _is_bool(a[2], True):
        return Dtype(_as_text(a[0]))
    if kind == "reconstruct" and len(a) == 3 and isinstance(a[0], Global) and a[0].kind == "ndarray" \
            and _shape1(a[1]) == 0 and _as_text(a[2]) == "b":
        return Array()
    if kind == "frombuffer" and len(a) == 4 and isinstance(a[1], Dtype) and _as_text(a[3]) in ("C", "F"):
        return _array(a[1].code, a[0], _shape1(a[2]))
    if kind == "scalar" and len(a) == 2 and isinstance(a[0], Dtype) and a[0].code == "b1" and a[1] in (b"\x00", b"\x01"):
        return a[1] == b"\x01"
    raise PickleRefused(f"calls {_SHOWN[kind]} with arguments a validation file never has (it holds only uint8 "
                        "and bool arrays, latin-1 bytes)")


def build(obj, state) -> None:
    """``BUILD``: numpy's dtype state (checked equal to the plain one) or an array's (shape, dtype, data)."""
    if isinstance(obj, Dtype) and not obj.built:
        s = tuple_items(state, 8)
        if s is not None and tuple(_as_text(v) if i == 1 else v for i, v in enumerate(s)) == _DTYPE_STATE \
                and all(type(v) in (int, type(None), str, bytes) for v in s):
            obj.built = True
            return
        raise PickleRefused("sets a numpy dtype state other than a plain uint8 / bool one")
    if isinstance(obj, Array) and obj.data is None:
        s = tuple_items(state, 5) or tuple_items(state, 4)
        if s is not None and len(s) == 5:
            s = s[1:] if type(s[0]) is int and s[0] == 1 else None
        if s is not None and isinstance(s[1], Dtype) and s[1].built and type(s[2]) in (bool, int):
            built = _array(s[1].code, s[3], _shape1(s[0]))
            obj.code, obj.data = built.code, built.data
            return
        raise PickleRefused("sets an array state other than a 1-D uint8 / bool array's")
    raise PickleRefused("sets the state of something that is not a numpy dtype or array")

"""The pickle of an insightface validation file read without unpickling it.

A ``.bin`` is a pickle of ``(bins, issame)``. :func:`read_pair_pickle` never hands the file to
:mod:`pickle`: it walks the opcode stream with :func:`pickletools.genops` (which parses each opcode's
argument and executes nothing) and runs its own small stack machine that builds only what such a file
holds: lists, tuples, ``bytes``, ``str``, bools, small ints and ``None``, plus three recognised calls
(``_codecs.encode(text, "latin1")`` and ``bytes()`` for protocol-2 ``bytes``; numpy's ``dtype``,
``_reconstruct``/``BUILD``, ``_frombuffer`` and ``scalar`` for 1-D ``uint8`` / ``bool`` arrays), each
checked argument by argument and turned into plain ``bytes`` or bools here; numpy is never called.

Why this is closed by construction rather than by a deny list: an opcode is handled only if it is in
:data:`_OPS`, a global only if it is in :data:`GLOBALS`, and a call only if its arguments have exactly the
shape that insightface's writers and numpy produce; everything else is a :class:`PickleRefused`. No
Python object of the file's choosing is ever created, so no ``__reduce__``, ``__setstate__``, dtype flag,
object pointer or codec of the file's choosing can run. Each opcode costs constant work and memory beyond
what the file itself holds, and :class:`Limits` caps the rest (file size, images, memo, nesting, stack,
decoded bytes, time). Nothing in the standard library or on PyPI does this: ``pickle`` offers only the
``find_class`` hook (the allowed callables still run on the file's arguments, which is how numpy's
reconstruct path crashed the interpreter), and safetensors / ``numpy.load(allow_pickle=False)`` do not
read these files.
"""

from __future__ import annotations

import codecs
import io
import pickletools
import time
from dataclasses import dataclass

from facematch.data.bin_objects import GLOBALS, Array, Global, PickleRefused, Seq, build, call, shown

__all__ = ["Limits", "PickleRefused", "read_pair_pickle", "shown"]


@dataclass(frozen=True)
class Limits:
    """What a validation file may not exceed; each default is far above what the published sets hold."""

    file_bytes: int = 1 << 30
    images: int = 200_000
    memo: int = 4_000_000  # entries, and the largest memo index
    depth: int = 6  # containers inside containers
    stack: int = 1_000_000  # items on the stack at once
    decoded_bytes: int = 2 << 30  # image bytes, counted once per use (a shared image counts each time)
    seconds: float = 60.0


_BYTES_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_TEXT_OPS = {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_INT_OPS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1"}
_CONST = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_PUT = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_GET = {"GET", "BINGET", "LONG_BINGET"}
_TUPLE_N = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_OTHER = {"PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
          "TUPLE", "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD"}
_OPS = frozenset(_BYTES_OPS | _TEXT_OPS | _INT_OPS | set(_CONST) | _PUT | _GET | set(_TUPLE_N) | _OTHER)


class _Machine:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}

    def pop(self):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise PickleRefused("pops an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list:
        if not self.marks:
            raise PickleRefused("closes a mark it never opened")
        at = self.marks.pop()
        items, self.stack[at:] = self.stack[at:], []
        return items

    def contain(self, seq: Seq, items: list) -> None:
        for x in items:
            if isinstance(x, Seq):
                x.frozen = True
                seq.depth = max(seq.depth, x.depth + 1)
        if seq.depth > self.limits.depth:
            raise PickleRefused(f"nests containers deeper than {self.limits.depth} (limit: depth)")
        if len(seq.items) + len(items) > self.limits.images:
            raise PickleRefused(f"has a list of more than {self.limits.images} items (limit: images)")
        seq.items.extend(items)

    def append(self, items: list) -> None:
        target = self.pop()
        if not (isinstance(target, Seq) and target.is_list) or target.frozen:
            raise PickleRefused("appends to something that is not an open list")
        self.contain(target, items)
        self.stack.append(target)

    def tuple_of(self, items: list) -> Seq:
        t = Seq([], False)
        self.contain(t, items)
        return t

    def step(self, name: str, arg) -> None:
        st, lim = self.stack, self.limits
        if name in _BYTES_OPS:
            st.append(arg.encode("latin-1") if isinstance(arg, str) else bytes(arg))
        elif name in _TEXT_OPS or name in _INT_OPS:
            if type(arg) is int and not -(1 << 63) <= arg < (1 << 63):
                raise PickleRefused("holds an integer too large for a shape or a flag")
            st.append(arg)
        elif name in _CONST:
            st.append(_CONST[name])
        elif name in _PUT:
            key = len(self.memo) if name == "MEMOIZE" else arg
            if not (0 <= key < lim.memo and len(self.memo) < lim.memo):
                raise PickleRefused(f"memoises at index {shown(key)}, past {lim.memo} (limit: memo)")
            if len(st) <= (self.marks[-1] if self.marks else 0):
                raise PickleRefused("memoises an empty stack")
            self.memo[key] = st[-1]
        elif name in _GET:
            if arg not in self.memo:
                raise PickleRefused(f"reads memo index {shown(arg)} that it never wrote")
            st.append(self.memo[arg])
        elif name in _TUPLE_N:
            n = _TUPLE_N[name]
            items = [self.pop() for _ in range(n)][::-1]
            st.append(self.tuple_of(items))
        elif name == "TUPLE":
            st.append(self.tuple_of(self.pop_mark()))
        elif name == "EMPTY_LIST":
            st.append(Seq([], True))
        elif name == "LIST":
            seq = Seq([], True)
            self.contain(seq, self.pop_mark())
            st.append(seq)
        elif name == "APPEND":
            self.append([self.pop()])
        elif name == "APPENDS":
            self.append(self.pop_mark())
        elif name == "MARK":
            self.marks.append(len(st))
            if len(self.marks) > lim.depth:
                raise PickleRefused(f"opens more than {lim.depth} marks at once (limit: depth)")
        elif name == "POP":
            self.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            st.append(self.pop())
            st.append(st[-1])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = arg.partition(" ")
            else:
                attr, module = self.pop(), self.pop()
            kind = GLOBALS.get((module, attr)) if isinstance(module, str) and isinstance(attr, str) else None
            if kind is None:
                raise PickleRefused(f"names {shown(module, 40)}.{shown(attr, 40)}, which a validation file "
                                    "never needs (nothing was run)")
            st.append(Global(kind))
        elif name == "REDUCE":
            args, fn = self.pop(), self.pop()
            if not isinstance(fn, Global) or fn.kind == "ndarray":
                raise PickleRefused("calls something that is not a recognised function")
            st.append(call(fn.kind, args))
        elif name == "BUILD":
            state = self.pop()
            build(st[-1] if len(st) > (self.marks[-1] if self.marks else 0) else None, state)
        # PROTO and FRAME change nothing here; STOP is handled by the caller
        if len(st) > lim.stack:
            raise PickleRefused(f"holds more than {lim.stack} items on its stack (limit: stack)")


def _pairs(top, limits: Limits) -> tuple[list[bytes], list[bool]]:
    if not (isinstance(top, Seq) and len(top.items) == 2):
        raise PickleRefused("does not hold (bins, issame_list)")
    bins, issame = top.items
    if not isinstance(bins, Seq):
        raise PickleRefused("holds bins that are not a list")
    images, total = [], 0
    for i, b in enumerate(bins.items):
        data = b if isinstance(b, bytes) else b.data if isinstance(b, Array) and b.code == "u1" else None
        if data is None:
            raise PickleRefused(f"holds image {i} that is not encoded image bytes")
        total += len(data)
        if total > limits.decoded_bytes:
            raise PickleRefused(f"holds more than {limits.decoded_bytes} bytes of images (limit: decoded_bytes)")
        images.append(data)
    if isinstance(issame, Array) and issame.code == "b1" and issame.data is not None:
        same = [v == 1 for v in issame.data]
    elif isinstance(issame, Seq) and all(type(v) is bool or (type(v) is int and v in (0, 1)) for v in issame.items):
        same = [bool(v) for v in issame.items]
    else:
        raise PickleRefused("holds an issame_list that is not a list of bools")
    return images, same


_CODE2OP = {op.code.encode("latin-1"): op for op in pickletools.opcodes}


def _string_line(stream: io.BytesIO) -> bytes:
    """Protocol 0's ``STRING`` argument (Python 2's repr of a ``str``) as bytes; pickletools would decode it as
    ASCII, which binary image bytes are not."""
    line = stream.readline()
    body = line[:-1].rstrip(b"\r") if line.endswith(b"\n") else b""
    if len(body) < 2 or body[0] != body[-1] or body[:1] not in (b"'", b'"'):
        raise PickleRefused("holds a protocol-0 string that is not quoted")
    try:
        return codecs.escape_decode(body[1:-1])[0]
    except ValueError:
        raise PickleRefused("holds a protocol-0 string with a broken escape") from None


def _opcodes(data: bytes):
    """``(name, arg, pos)`` of each opcode, parsed by pickletools' own argument readers (which execute
    nothing); an opcode outside :data:`_OPS` is refused before its argument is read."""
    stream = io.BytesIO(data)
    while True:
        pos = stream.tell()
        op = _CODE2OP.get(stream.read(1))
        if op is None:
            if pos >= len(data):
                raise PickleRefused("is truncated (the pickle ends before STOP)")
            raise PickleRefused(f"is not a pickle (no opcode has the byte at {pos})")
        if op.name not in _OPS:
            raise PickleRefused(f"uses the opcode {op.name} at byte {pos}, which a validation file never has")
        try:
            arg = _string_line(stream) if op.name == "STRING" else op.arg.reader(stream) if op.arg else None
        except PickleRefused:
            raise
        except Exception:  # pickletools' readers raise ValueError and others on short or bad arguments
            raise PickleRefused(f"is truncated or not a pickle (a broken {op.name} argument at byte {pos})") from None
        yield op.name, arg, pos
        if op.name == "STOP":
            return


def read_pair_pickle(data: bytes, limits: Limits = Limits()) -> tuple[list[bytes], list[bool]]:
    """``(images, issame)`` of a validation file's bytes, or :class:`PickleRefused` (one line). Truncation
    says ``truncated``; every limit's message names it as ``(limit: NAME)``."""
    machine, deadline = _Machine(limits), time.monotonic() + limits.seconds
    for n, (name, arg, pos) in enumerate(_opcodes(data)):
        if n % 4096 == 4095 and time.monotonic() > deadline:
            raise PickleRefused(f"takes more than {limits.seconds:g} s to read (limit: seconds)")
        if name != "STOP":
            machine.step(name, arg)
    if machine.marks or len(machine.stack) != 1:
        raise PickleRefused("ends with a stack other than one object")
    return _pairs(machine.stack[0], limits)

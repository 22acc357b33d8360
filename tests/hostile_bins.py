"""Hostile insightface ``.bin`` files, written opcode by opcode from the descriptions in issue 30 (none of
them is made by pickling a real object, so none runs anything here), and a seeded generator of random ones
over the whole opcode set and numpy's reconstruct path, for tests/unit and tests/integration."""

from __future__ import annotations

import io
import pickle
import pickletools
import random
import struct

import numpy as np
from PIL import Image

# ------------------------------------------------------------------------------------------------------
# a small pickle assembler

PROTO2, STOP, MARK, TUPLE, REDUCE, BUILD = b"\x80\x02", b".", b"(", b"t", b"R", b"b"
T1, T2, T3, NONE, TRUE, FALSE, EMPTY_LIST, APPEND, APPENDS = b"\x85", b"\x86", b"\x87", b"N", b"\x88", b"\x89", b"]", b"a", b"e"
EMPTY_DICT, SETITEMS, EMPTY_TUPLE = b"}", b"u", b")"


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def stack_glob(module: str, name: str) -> bytes:
    return text(module) + text(name) + b"\x93"


def text(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b


def raw(b: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(b)) + b


def pystr(b: bytes) -> bytes:
    """Python 2's ``str`` (BINSTRING)."""
    return b"T" + struct.pack("<i", len(b)) + b


def bytearray8(b: bytes) -> bytes:
    return b"\x96" + struct.pack("<Q", len(b)) + b


def num(n: int) -> bytes:
    if -(1 << 31) <= n < (1 << 31):
        return b"J" + struct.pack("<i", n)
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def pickle_of(*parts: bytes) -> bytes:
    return PROTO2 + b"".join(parts) + STOP


def dtype(code: str, flags: int = 0, endian: str = "|") -> bytes:
    return (glob("numpy", "dtype") + text(code) + FALSE + TRUE + T3 + REDUCE
            + MARK + num(3) + text(endian) + NONE + NONE + NONE + num(-1) + num(-1) + num(flags) + TUPLE + BUILD)


def array(code: str, shape: tuple, data: bytes, flags: int = 0) -> bytes:
    """numpy's protocol-2 path: ``_reconstruct(ndarray, (0,), b'b')`` then ``BUILD (1, shape, dtype, False, data)``."""
    dims = MARK + b"".join(num(n) for n in shape) + TUPLE
    return (glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + num(0) + T1 + raw(b"b") + T3
            + REDUCE + MARK + num(1) + dims + dtype(code, flags) + FALSE + raw(data) + TUPLE + BUILD)


def pair_file(bins: bytes, issame: bytes) -> bytes:
    """``(bins, issame)`` given the assembled bins and issame objects."""
    return pickle_of(bins, issame, T2)


def listing(*items: bytes) -> bytes:
    return EMPTY_LIST + MARK + b"".join(items) + APPENDS


def png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((112, 112, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------
# the classes of issue 30's table: name -> (bytes, words the refusal names)


def hostile_cases() -> dict[str, tuple[bytes, str]]:
    ok_issame = listing(TRUE)
    cjk = "".join(chr(0x4E00 + i) for i in range(4000))
    punycode = (glob("_codecs", "encode") + put(0) + text(cjk) + put(1) + text("punycode") + put(2) + T2 + REDUCE)
    punycode_again = get(0) + get(1) + get(2) + T2 + REDUCE + b"0"  # POP
    big = bytearray8(b"A" * (1 << 20)) + put(5)
    hash_alike = EMPTY_DICT + MARK + b"".join(num(k * ((1 << 61) - 1)) + NONE for k in range(1, 100_001)) + SETITEMS
    return {
        # 176 bytes: dtype('O8') whose flags BUILD sets, then _reconstruct + BUILD with 8 raw bytes
        "object_dtype_pointer": (pair_file(listing(array("O8", (1,), b"AAAAAAAA", flags=63)), ok_issame), "dtype"),
        "structured_dtype_offset": (pair_file(listing(
            glob("numpy", "dtype") + text("V8") + FALSE + TRUE + T3 + REDUCE + MARK + num(3) + text("|") + NONE
            + MARK + text("f") + TUPLE + EMPTY_DICT + text("f") + MARK + glob("numpy", "dtype") + text("O8") + FALSE
            + TRUE + T3 + REDUCE + num(1 << 40) + TUPLE + b"s" + num(8) + num(1) + num(63) + TUPLE + BUILD), ok_issame), "dtype"),
        "nested_object_arrays": (pair_file(listing(_nested_object_arrays(5000)), ok_issame), "dtype"),
        "nested_lists_as_issame": (pair_file(listing(raw(b"x"), raw(b"y")), _nested_lists(5000)), "depth"),
        "huge_memo_index": (pickle_of(NONE, put(1 << 28), b"0", listing(raw(b"x"), raw(b"y")), ok_issame, T2), "memo"),
        "huge_object_array": (pair_file(listing(array("O", (400_000_000,), b"")), ok_issame), "dtype"),
        "shared_bytearray": (pickle_of(EMPTY_LIST, MARK, big, *[get(5)] * 19_999, APPENDS,
                                       listing(*[TRUE] * 10_000), T2), "decoded_bytes"),
        "punycode_through_memo": (pickle_of(punycode, b"0", *[punycode_again] * 199, listing(raw(b"x"), raw(b"y")),
                                            ok_issame, T2), "encode"),
        "hash_alike_dict": (pickle_of(hash_alike, b"0", listing(raw(b"x"), raw(b"y")), ok_issame, T2), "opcode"),
        "issame_item_array": (pair_file(listing(raw(b"x"), raw(b"y")), listing(array("b1", (2,), b"\x01\x00"))), "issame"),
        "issame_2d_array": (pair_file(listing(raw(b"x"), raw(b"y"), raw(b"z"), raw(b"w")),
                                      array("b1", (2, 1), b"\x01\x00")), "array"),
        "bins_a_dtype": (pair_file(dtype("u1"), ok_issame), "bins"),
        "stride0_image": (pair_file(listing(array("u1", (10 ** 10,), b"\x00"), raw(b"y")), ok_issame), "array"),
        "newline_module": (pair_file(listing(stack_glob("os\nerror: all good", "system")), ok_issame), "names"),
    }


def _nested_object_arrays(n: int) -> bytes:
    inner = raw(b"x")
    for _ in range(n):
        inner = (glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + num(0) + T1 + raw(b"b")
                 + T3 + REDUCE + MARK + num(1) + MARK + num(1) + TUPLE + dtype("O") + FALSE + listing(inner) + TUPLE + BUILD)
    return inner


def _nested_lists(n: int) -> bytes:
    return EMPTY_LIST * n + APPEND * (n - 1)


def valid_variants() -> dict[str, tuple[bytes, list[bytes], list[bool]]]:
    """Encodings real files use: name -> (file bytes, images, issame)."""
    a, b = png(10), png(200)
    py2 = pickle_of(EMPTY_LIST, MARK, pystr(a), pystr(b), pystr(a), pystr(a), APPENDS,
                    EMPTY_LIST, MARK, TRUE, FALSE, APPENDS, T2)
    py2_protocol0 = (b"((lp0\nS" + repr(a)[1:].encode() + b"\np1\naS" + repr(b)[1:].encode()
                     + b"\np2\na(lp3\nI01\natp4\n.")
    npy = [np.frombuffer(x, np.uint8) for x in (a, b, a, a)]
    out = {
        "python2_str_protocol2": (py2, [a, b, a, a], [True, False]),
        "python2_str_protocol0": (py2_protocol0, [a, b], [True]),
        "numpy_python2_style": (pair_file(listing(array("u1", (len(a),), a), array("u1", (len(b),), b)),
                                          array("b1", (1,), b"\x01")), [a, b], [True]),
        "empty_image_protocol2": (pickle.dumps(([a, b""], [False]), protocol=2), [a, b""], [False]),
    }
    for p in (2, 3, 4, 5):
        out[f"bytes_protocol{p}"] = (pickle.dumps(([a, b, a, a], [True, False]), protocol=p), [a, b, a, a], [True, False])
        out[f"numpy_protocol{p}"] = (pickle.dumps((npy, np.array([True, False])), protocol=p), [a, b, a, a], [True, False])
        out[f"numpy_bool_scalars_protocol{p}"] = (pickle.dumps(([a, b], list(np.array([True]))), protocol=p), [a, b], [True])
    return out


# ------------------------------------------------------------------------------------------------------
# the generator


_SAFE_GLOBALS = [("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                 ("_codecs", "encode"), ("numpy._core.numeric", "_frombuffer"), ("numpy.core.multiarray", "scalar"),
                 ("__builtin__", "bytes")]
_BAD_GLOBALS = [("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"), ("posix", "system"),
                ("__builtin__", "getattr"), ("numpy", "load"), ("codecs", "decode"), ("copy_reg", "_reconstructor"),
                ("numpy.core.multiarray", "scalar\n"), ("builtins", "bytearray")]
_CODES = ["u1", "b1", "O", "O8", "V8", "<i8", "f4", "S5", "u1\x00", "b"]


def _random_arg(op, rng: random.Random) -> bytes:
    a = op.arg
    if a is None:
        return b""
    n = a.n
    if n > 0:
        return rng.choice([bytes(n), b"\xff" * n, rng.randbytes(n)])
    if n == pickletools.UP_TO_NEWLINE:
        return rng.choice([b"0", b"01", b"00", b"-1", b"'abc'", b"L12", b"1e999", b"x" * rng.randint(0, 40),
                           b"numpy dtype", b"os system", b"9" * 200]) + b"\n"
    if n == pickletools.TAKEN_FROM_ARGUMENT1:
        body = rng.randbytes(rng.randint(0, 8))
        return bytes([len(body) if rng.random() < .8 else 255]) + body
    if n == pickletools.TAKEN_FROM_ARGUMENT4:
        body = rng.randbytes(rng.randint(0, 8))
        return struct.pack("<i", len(body) if rng.random() < .8 else rng.choice([-1, 1 << 30])) + body
    if n == pickletools.TAKEN_FROM_ARGUMENT4U:
        body = rng.randbytes(rng.randint(0, 8))
        return struct.pack("<I", len(body) if rng.random() < .8 else (1 << 32) - 1) + body
    if n == pickletools.TAKEN_FROM_ARGUMENT8U:
        body = rng.randbytes(rng.randint(0, 8))
        return struct.pack("<Q", len(body) if rng.random() < .8 else (1 << 63)) + body
    return b""


def _random_piece(rng: random.Random, depth: int = 0) -> bytes:
    r = rng.random()
    if r < 0.35:  # any opcode at all, with a plausible or broken argument
        op = rng.choice(pickletools.opcodes)
        return op.code.encode("latin-1") + _random_arg(op, rng)
    if r < 0.5:
        return rng.choice([glob(*rng.choice(_SAFE_GLOBALS + _BAD_GLOBALS)), stack_glob(*rng.choice(_SAFE_GLOBALS + _BAD_GLOBALS))])
    if r < 0.65:  # numpy's reconstruct path with random dtype, flags, shape and data
        shape = tuple(rng.choice([0, 1, 2, 5, 10 ** 10, -1, 1 << 62]) for _ in range(rng.choice([0, 1, 1, 2])))
        return array(rng.choice(_CODES), shape, rng.randbytes(rng.choice([0, 1, 2, 5, 8])), flags=rng.choice([0, 0, 1, 63]))
    if r < 0.72:
        return dtype(rng.choice(_CODES), rng.choice([0, 63]), rng.choice(["|", "<", ">", "="]))
    if r < 0.8:
        return rng.choice([put(rng.choice([0, 1, 7, 1 << 28, (1 << 32) - 1])), get(rng.choice([0, 1, 7, 1 << 28])),
                           b"\x94", b"q" + bytes([rng.randint(0, 255)]), b"h" + bytes([rng.randint(0, 3)])])
    if r < 0.9 and depth < 3:
        return listing(*[_random_piece(rng, depth + 1) for _ in range(rng.randint(0, 4))])
    return rng.choice([MARK, TUPLE, T1, T2, T3, REDUCE, BUILD, APPEND, APPENDS, EMPTY_LIST, NONE, TRUE, FALSE,
                       raw(b"x"), pystr(b"y"), text("latin1"), num(rng.choice([0, 1, -1, 1 << 40]))])


def random_case(seed: int) -> bytes:
    """A random pickle: random pieces, or a valid file cut, spliced or with bytes flipped."""
    rng = random.Random(seed)
    if rng.random() < 0.3:
        data = bytearray(rng.choice(list(valid_variants_cached().values()))[0])
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.5:
                data[i] = rng.randint(0, 255)
            elif kind < 0.7:
                del data[i:]
                if not data:
                    break
            else:
                data[i:i] = _random_piece(rng)
        return bytes(data)
    return (rng.choice([PROTO2, b"\x80\x05", b""]) + b"".join(_random_piece(rng) for _ in range(rng.randint(1, 30)))
            + rng.choice([STOP, STOP, b""]))


_VALID: dict | None = None


def valid_variants_cached() -> dict:
    global _VALID
    if _VALID is None:
        _VALID = valid_variants()
    return _VALID

"""The .bin reader against files made to hurt it (issue 30's table, one named test each) and against every
encoding real files use; each refusal is one line naming the file and, where a limit was passed, the limit."""

from __future__ import annotations

import os

import pytest

from facematch.data.bin_pickle import Limits, PickleRefused, read_pair_pickle
from facematch.data.bin_set import BinSet, load_bin
from facematch.errors import MalformedFileError
from tests.hostile_bins import hostile_cases, listing, pair_file, pickle_of, raw, valid_variants

HOSTILE = hostile_cases()
VALID = valid_variants()


def refusal(path) -> str:
    with pytest.raises(MalformedFileError) as err:
        load_bin(path)
    msg = str(err.value)
    assert "\n" not in msg and "\r" not in msg and msg.startswith(str(path)), msg
    return msg


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_class_is_one_line_naming_the_file(tmp_path, name):
    data, words = HOSTILE[name]
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    msg = refusal(path)
    assert words in msg, msg


def test_the_176_byte_pointer_file_never_reaches_numpy(tmp_path):
    data, _ = HOSTILE["object_dtype_pointer"]
    assert len(data) < 200  # the size class of the file that segfaulted the unpickler
    path = tmp_path / "o8.bin"
    path.write_bytes(data)
    assert "numpy.dtype" in refusal(path)


def test_a_module_name_with_a_newline_is_escaped(tmp_path):
    path = tmp_path / "nl.bin"
    path.write_bytes(HOSTILE["newline_module"][0])
    msg = refusal(path)
    assert "'os\\nerror: all good'.system" in msg and "nothing was run" in msg


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_encoding_real_files_use_loads(tmp_path, name):
    data, images, issame = VALID[name]
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    got_images, got_issame, digest = load_bin(path)
    assert (got_images, got_issame) == (images, issame) and len(digest) == 64


def test_an_empty_image_in_a_protocol_2_file_is_a_bad_image_not_a_bad_pickle(tmp_path):
    from facematch.errors import UnreadableImageError
    from facematch.faces.images import load_image_bytes

    path = tmp_path / "empty.bin"
    path.write_bytes(VALID["empty_image_protocol2"][0])
    s = BinSet(path)
    assert s(s.pairs[0][1]) == b""
    with pytest.raises(UnreadableImageError):
        load_image_bytes(s(s.pairs[0][1]), "crop")


@pytest.mark.parametrize("limit, value, words", [
    ("file_bytes", 100, "limit: file_bytes"), ("images", 3, "limit: images"), ("memo", 2, "limit: memo"),
    ("depth", 1, "limit: depth"), ("stack", 3, "limit: stack"), ("decoded_bytes", 10, "limit: decoded_bytes"),
])
def test_each_limit_is_one_line_naming_it(tmp_path, limit, value, words):
    path = tmp_path / "four.bin"
    path.write_bytes(VALID["bytes_protocol2"][0])
    load_bin(path)  # within the defaults
    with pytest.raises(MalformedFileError) as err:
        load_bin(path, Limits(**{limit: value}))
    assert words in str(err.value) and str(path) in str(err.value)


def test_the_time_limit_stops_a_long_stream():
    # 40,000 opcodes that push and pop: cheap each, refused by the clock once it is passed
    data = pickle_of(*[raw(b"x") + b"0"] * 40_000, listing(raw(b"a"), raw(b"b")), listing(b"\x88"), b"\x86")
    assert read_pair_pickle(data)[1] == [True]
    with pytest.raises(PickleRefused, match=r"limit: seconds"):
        read_pair_pickle(data, Limits(seconds=0))


def test_an_unreadable_or_huge_file_is_one_line(tmp_path, monkeypatch):
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as fh:  # sparse: 9 GB on paper, nothing on disk
        fh.truncate(9 << 30)
    assert "limit: file_bytes" in refusal(huge)
    locked = tmp_path / "locked.bin"
    locked.write_bytes(VALID["bytes_protocol4"][0])

    def denied(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(locked), "open", denied)
    msg = refusal(locked)
    assert "PermissionError" in msg and "Permission denied" in msg


def test_a_list_is_not_appended_to_once_it_is_inside_another():
    # [] memoised, put in an outer list, then grown through the memo: depth could not be tracked, so refused
    data = pickle_of(b"]", b"r\x00\x00\x00\x00", b"]", b"j\x00\x00\x00\x00", b"a", b"j\x00\x00\x00\x00",
                     raw(b"x"), b"a", b"0", listing(raw(b"a"), raw(b"b")), listing(b"\x88"), b"\x86")
    with pytest.raises(PickleRefused, match="not an open list"):
        read_pair_pickle(data)


def test_a_pickle_of_the_right_shape_with_a_wrong_pair_count_is_refused(tmp_path):
    path = tmp_path / "three.bin"
    path.write_bytes(pair_file(listing(raw(b"a"), raw(b"b"), raw(b"c")), listing(b"\x88")))
    assert "3 images for 1 pairs" in refusal(path)
    assert os.path.getsize(path) < 100

"""The published figures' file against the documents it transcribes (../shared/seeds/, beside the data):
every header, row and footnote of each table is in its document as written."""

from __future__ import annotations

import re

import pytest

from facematch.report import published
from tests.helpers import DATA

SEEDS = DATA.parent


def _flat(text: str) -> str:
    """Markdown markup and spacing out of the way: the words and numbers as the document prints them."""
    return re.sub(r"\s+", " ", re.sub(r"<br\s*/?>|\*\*", " ", text)).strip()


def _table_rows(document: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in document.splitlines()
            if line.strip().startswith("|") and not set(line.strip()) <= set("|-: ")]


@pytest.mark.parametrize("name", ["face_matching", "facenet_implementation"])
def test_each_transcribed_table_is_in_its_document_verbatim(name):
    t = published.table(name)
    path = SEEDS / t["document"]
    if not path.is_file():
        pytest.skip(f"seed document {path} not found (set FACEMATCH_DATA_DIR to the data beside seeds/)")
    document = path.read_text()
    rows = _table_rows(document)
    assert [str(h) for h in t["header"]] in rows
    for row in t["rows"]:
        assert [str(c) for c in row] in rows, row
    flat = _flat(document)
    for note in t["footnotes"]:
        assert _flat(note) in flat, note
    assert t["title"] in document.splitlines()[0]

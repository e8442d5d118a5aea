"""`journal --json` writes one record per line with the C encoder: the text parses back to the
same document, each list element is exactly one line, and empty lists and scalars stay inline."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from app.cli import write_json_records


def test_records_round_trip_one_per_line() -> None:
    doc = {
        "intents": [{"b": 2, "a": "x\ny"}, {"a": "é", "b": None}],
        "empty": [],
        "positions": {"NIFTY26DEC24000CE": -75},
        "schema_version": 9,
    }
    out = io.StringIO()
    asyncio.run(write_json_records(doc, out))
    text = out.getvalue()
    assert json.loads(text) == doc
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert '"empty": [],' in lines
    start = lines.index('"intents": [')
    assert [json.loads(line.rstrip(",")) for line in lines[start + 1 : start + 3]] == doc["intents"]
    assert lines[start + 3] == "],"
    assert list(json.loads(text)) == sorted(doc)  # keys in a stable order


async def _each(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def test_async_iterators_stream_as_lists_do() -> None:
    doc: dict[str, Any] = {"fills": [{"q": 1}, {"q": 2}, {"q": 3}], "none": [], "n": 1}
    listed, streamed = io.StringIO(), io.StringIO()
    asyncio.run(write_json_records(doc, listed))
    asyncio.run(write_json_records({k: _each(v) if isinstance(v, list) else v for k, v in doc.items()}, streamed))
    assert streamed.getvalue() == listed.getvalue()
    assert json.loads(streamed.getvalue()) == doc

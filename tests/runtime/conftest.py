from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.core.instruments import Instrument
from tests.runtime.harness import Harness


@pytest.fixture
async def harness(tmp_path: Path, catalog: dict[str, Instrument]) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, catalog)
    yield h
    await h.stop()

"""The id port's two sources. Every id the engine hands out (client order ids, node ids) comes
from one of these, injected: random in production, a seeded stream in a replay."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable


def new_client_order_id() -> str:
    """20 alphanumerics: 'TD' + 18 base32 characters (90 random bits). Fits a Kite tag or ClOrdID."""
    return "TD" + base64.b32encode(secrets.token_bytes(12)).decode()[:18]


def seeded_ids(seed: int, start: int = 0) -> Callable[[], str]:
    """The same ids, in the same order, for the same ``seed`` and ``start``: a replay's id source.
    ``start`` continues a journal's sequence after a restart, so a resumed run never repeats an id
    it already sent; ids of different seeds differ (they are hashes of seed and sequence)."""
    counter = [start]

    def next_id() -> str:
        counter[0] += 1
        digest = hashlib.sha256(f"trading-desk:{seed}:{counter[0]}".encode()).digest()
        return "TD" + base64.b32encode(digest[:12]).decode()[:18]

    return next_id

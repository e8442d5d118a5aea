"""The engine's whole in-memory state at an input boundary, as bytes (zlib-compressed pickle),
and back. Pickle keeps what the state is made of exactly: the book's shared row objects, sets,
the not-persisted timers of each order. The id port is not part of it (a replay feeds the ids
the run drew). Reading a checkpoint builds only classes of ``engine.core`` and a few builtins:
a row written by anyone else cannot run code in the reader."""

from __future__ import annotations

import io
import pickle
import zlib
from collections.abc import Callable
from typing import Any

from engine.core.state import EngineState

FORMAT = 1
_BUILTINS = {("builtins", n) for n in ("set", "frozenset", "dict", "list", "tuple", "bytes", "int", "str")} | {
    ("collections", "deque"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: corrupt, from another format, or not ours."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _BUILTINS or (module.startswith("engine.core.") and not name.startswith("_")):
            found = super().find_class(module, name)
            if (module, name) in _BUILTINS or isinstance(found, type):
                return found
        raise CheckpointError(f"checkpoint refers to {module}.{name}, which a checkpoint may not hold")


def dump_state(state: EngineState) -> bytes:
    body = {k: v for k, v in vars(state).items() if k != "new_id"}
    return zlib.compress(pickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL), 1)


def load_state_blob(blob: bytes, new_id: Callable[[], str], fmt: int = FORMAT) -> EngineState:
    if fmt != FORMAT:
        raise CheckpointError(f"checkpoint format {fmt} is not {FORMAT}: written by another version")
    try:
        body = _Restricted(io.BytesIO(zlib.decompress(bytes(blob)))).load()
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"checkpoint cannot be read: {exc}") from None
    if not isinstance(body, dict) or "book" not in body:
        raise CheckpointError("checkpoint does not hold an engine state")
    state = EngineState.__new__(EngineState)
    vars(state).update(body)
    state.new_id = new_id
    return state

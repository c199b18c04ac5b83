"""Byte accounting: every message is counted by the length of its serialisation.

A :class:`ByteLedger` records one row per message (round, client, direction,
category, bytes). Categories: ``update`` (plaintext values), ``index`` (index
sets), ``ciphertext``, ``context`` (public context / keys, once). Directions:
``up`` (client -> server) and ``down`` (server -> one client). Nothing here
derives a size from a formula: callers pass the serialised bytes and the ledger
takes ``len()``.

>>> led = ByteLedger()
>>> led.add(b"abcd", round_=1, client=0, direction="up", category="update")
4
>>> led.per_client_round(round_=1, direction="up")
4.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

DIRECTIONS = ("up", "down")
CATEGORIES = ("update", "index", "ciphertext", "context", "clip")  # clip: adaptive clip-bound messages


def dense_message(x: np.ndarray) -> bytes:
    """A dense float32 update as raw little-endian bytes (what FedAvg sends)."""
    return np.ascontiguousarray(x, dtype="<f4").tobytes()


def values_message(values: np.ndarray) -> bytes:
    """Plaintext float32 values of a sparse update (the indices travel apart)."""
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


@dataclass
class ByteLedger:
    """Rows of (round, client, direction, category, bytes); round 0 is one-time setup."""

    rows: list[dict] = field(default_factory=list)

    def add(self, payload: bytes | Iterable[bytes], *, round_: int, client: int, direction: str,
            category: str) -> int:
        """Count a serialised message (or a list of them) and return its byte length."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
        if isinstance(payload, (bytes, bytearray, memoryview)):
            n = len(payload)
        else:
            n = sum(len(p) for p in payload)
        self.rows.append({"round": round_, "client": client, "direction": direction,
                          "category": category, "bytes": n})
        return n

    def total(self, *, round_: int | None = None, direction: str | None = None,
              category: str | None = None, client: int | None = None) -> int:
        return sum(r["bytes"] for r in self.rows
                   if (round_ is None or r["round"] == round_) and (direction is None or r["direction"] == direction)
                   and (category is None or r["category"] == category) and (client is None or r["client"] == client))

    def per_client_round(self, *, round_: int, direction: str) -> float:
        """Mean bytes per participating client in one round and direction."""
        clients = {r["client"] for r in self.rows if r["round"] == round_ and r["direction"] == direction}
        return self.total(round_=round_, direction=direction) / len(clients) if clients else 0.0

    def breakdown(self, *, round_: int, direction: str) -> dict[str, int]:
        """Bytes of one round and direction summed over clients, per category."""
        return {c: self.total(round_=round_, direction=direction, category=c) for c in CATEGORIES}

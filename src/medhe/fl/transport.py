"""How a round's client updates reach the server and come back: plaintext or CKKS.

Every transport has the same contract, so methods differ only in composition:

``round(payloads, weights=..., noise=..., ledger=..., round_=...) -> RoundResult``

* ``payloads``: one :class:`Payload` per client, dense or sparse (after top-k and
  clipping, before noise);
* ``weights``: aggregation weights (client size / total). **Clients** multiply by
  their weight before sending, so the server only adds (under CKKS it never
  multiplies or rescales);
* ``noise(client, n)``: the client's share of distributed Gaussian noise for the
  ``n`` values it transmits, or None without DP;
* every message is serialised and counted in ``ledger`` by its length; the
  server works only on what it deserialises.

The result is the weighted mean update as the clients see it after the
downlink (decrypted under CKKS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from medhe import comm
from medhe.comm import ByteLedger

NoiseFn = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Payload:
    """A client's update for one round: dense (``indices is None``) or sparse."""

    values: np.ndarray
    indices: np.ndarray | None = None

    @property
    def nnz(self) -> int:
        return int(self.values.size)


@dataclass
class RoundResult:
    """The mean update the clients apply, plus time per phase (seconds, summed over clients)."""

    mean_update: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, float] = field(default_factory=dict)


def _weighted(values: np.ndarray, weight: float, noise: np.ndarray | None) -> np.ndarray:
    out = values.astype(np.float32) * np.float32(weight)
    if noise is not None:
        out += noise.astype(np.float32)
    return out


def check_round_inputs(payloads: Sequence[Payload], weights: Sequence[float], size: int) -> None:
    """Shape checks shared by transports."""
    if len(payloads) == 0 or len(payloads) != len(weights):
        raise ValueError(f"need one weight per payload, got {len(payloads)} payloads and {len(weights)} weights")
    if not np.isclose(sum(weights), 1.0):
        raise ValueError(f"aggregation weights must sum to 1, got {sum(weights)!r}")
    for i, p in enumerate(payloads):
        if p.indices is None and p.values.size != size:
            raise ValueError(f"client {i}: dense payload has {p.values.size} values, the model has {size}")


class PlainTransport:
    """Plaintext float32 messages: dense vectors, or index set + values for sparse updates.

    The server sees every individual update (and, for sparse updates, every index set).
    """

    name = "plain"

    def __init__(self, *, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        self.size = size

    def setup(self, ledger: ByteLedger, *, num_clients: int) -> None:
        """Plaintext needs no keys or contexts."""

    def round(self, payloads: Sequence[Payload], *, weights: Sequence[float], noise: NoiseFn | None,
              ledger: ByteLedger, round_: int) -> RoundResult:
        from medhe.ckks import decode_index_set, encode_index_set

        check_round_inputs(payloads, weights, self.size)
        t0 = time.perf_counter()
        agg = np.zeros(self.size, dtype=np.float32)
        sparse = payloads[0].indices is not None
        for i, (p, w) in enumerate(zip(payloads, weights)):
            vals = _weighted(p.values, w, noise(i, p.nnz) if noise else None)
            msg = comm.values_message(vals)
            ledger.add(msg, round_=round_, client=i, direction="up", category="update")
            received = np.frombuffer(msg, dtype="<f4")
            if p.indices is None:
                agg += received
            else:
                idx_msg = encode_index_set(p.indices, size=self.size)
                ledger.add(idx_msg, round_=round_, client=i, direction="up", category="index")
                agg[decode_index_set(idx_msg, size=self.size)] += received
        if sparse:
            support = np.flatnonzero(agg)
            down = [encode_index_set(support, size=self.size), comm.values_message(agg[support])]
            for i in range(len(payloads)):
                ledger.add(down[0], round_=round_, client=i, direction="down", category="index")
                ledger.add(down[1], round_=round_, client=i, direction="down", category="update")
            mean = np.zeros(self.size, dtype=np.float32)
            mean[decode_index_set(down[0], size=self.size)] = np.frombuffer(down[1], dtype="<f4")
        else:
            down_msg = comm.dense_message(agg)
            for i in range(len(payloads)):
                ledger.add(down_msg, round_=round_, client=i, direction="down", category="update")
            mean = np.frombuffer(down_msg, dtype="<f4").copy()
        return RoundResult(mean, {"aggregate": time.perf_counter() - t0})

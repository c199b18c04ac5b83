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


def check_round_inputs(payloads: Sequence[Payload], weights: Sequence[float], size: int) -> None:
    """Shape checks shared by transports."""
    if len(payloads) == 0 or len(payloads) != len(weights):
        raise ValueError(f"need one weight per payload, got {len(payloads)} payloads and {len(weights)} weights")
    if not np.isclose(sum(weights), 1.0):
        raise ValueError(f"aggregation weights must sum to 1, got {sum(weights)!r}")
    for i, p in enumerate(payloads):
        if p.indices is None and p.values.size != size:
            raise ValueError(f"client {i}: dense payload has {p.values.size} values, the model has {size}")


def align_payloads(payloads: Sequence[Payload], *, alignment: str, size: int, ledger: ByteLedger,
                   round_: int) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """Bring sparse payloads onto common positions so that they add slot by slot.

    * dense payloads: returned as they are (support None);
    * ``union``: each client uploads its index set (counted), the server broadcasts the
      union (counted, per client); each client's values are gathered at the union
      positions, zeros where it did not select. Reveals every index set to the server;
    * ``dense``: each client scatters its values into the full-length vector.

    Returns the common support (None = all positions) and one float64 vector per client.
    """
    from medhe.ckks.sparse import align_to_union, decode_index_set, encode_index_set, scatter_dense, union_index_sets

    if payloads[0].indices is None:
        return None, [p.values.astype(np.float64) for p in payloads]
    if alignment == "dense":
        return None, [scatter_dense(p.indices, p.values, length=size) for p in payloads]
    if alignment != "union":
        raise ValueError(f"alignment must be 'union' or 'dense' here, got {alignment!r}")
    sets = []
    for i, p in enumerate(payloads):
        msg = encode_index_set(p.indices, length=size)
        ledger.add(msg, round_=round_, client=i, direction="up", category="index")
        sets.append(decode_index_set(msg))  # the server works on what it received
    union_msg = encode_index_set(union_index_sets(sets), length=size)
    for i in range(len(payloads)):
        ledger.add(union_msg, round_=round_, client=i, direction="down", category="index")
    union = decode_index_set(union_msg)
    return union, [align_to_union(p.indices, p.values, union) for p in payloads]


def noisy_weighted(vectors: Sequence[np.ndarray], weights: Sequence[float], noise: NoiseFn | None) -> list[np.ndarray]:
    """Each client's ``w_i * v_i`` plus its noise share, as the client computes it before sending."""
    out = []
    for i, (v, w) in enumerate(zip(vectors, weights)):
        x = np.asarray(v, dtype=np.float64) * float(w)
        if noise is not None:
            x = x + noise(i, x.size).astype(np.float64)
        out.append(x)
    return out


class PlainTransport:
    """Plaintext float32 messages. The server sees every individual update.

    Alignment of sparse updates: ``own`` (each client sends its own index set and
    values; the cheapest plaintext top-k), or ``union`` / ``dense`` as under CKKS
    (:func:`align_payloads`), so that an ablation without HE puts its noise on
    exactly the positions the encrypted method does.
    """

    name = "plain"

    def __init__(self, *, size: int, alignment: str = "own") -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        if alignment not in ("own", "union", "dense"):
            raise ValueError(f"alignment must be 'own', 'union' or 'dense', got {alignment!r}")
        self.size = size
        self.alignment = alignment

    def setup(self, ledger: ByteLedger, *, num_clients: int) -> None:
        """Plaintext needs no keys or contexts."""

    def round(self, payloads: Sequence[Payload], *, weights: Sequence[float], noise: NoiseFn | None,
              ledger: ByteLedger, round_: int) -> RoundResult:
        check_round_inputs(payloads, weights, self.size)
        t0 = time.perf_counter()
        if payloads[0].indices is not None and self.alignment == "own":
            mean = self._own(payloads, weights, noise, ledger, round_)
            return RoundResult(mean, {"aggregate": time.perf_counter() - t0})
        support, vectors = align_payloads(payloads, alignment=self.alignment, size=self.size, ledger=ledger,
                                          round_=round_)
        agg = np.zeros(vectors[0].size, dtype=np.float32)
        for i, x in enumerate(noisy_weighted(vectors, weights, noise)):
            msg = comm.values_message(x)
            ledger.add(msg, round_=round_, client=i, direction="up", category="update")
            agg += np.frombuffer(msg, dtype="<f4")
        down = comm.values_message(agg)
        for i in range(len(payloads)):
            ledger.add(down, round_=round_, client=i, direction="down", category="update")
        received = np.frombuffer(down, dtype="<f4")
        mean = received.copy() if support is None else _scatter(support, received, self.size)
        return RoundResult(mean, {"aggregate": time.perf_counter() - t0})

    def _own(self, payloads, weights, noise, ledger, round_) -> np.ndarray:
        from medhe.ckks.sparse import decode_index_set, encode_index_set

        agg = np.zeros(self.size, dtype=np.float32)
        xs = noisy_weighted([p.values for p in payloads], weights, noise)
        for i, (p, x) in enumerate(zip(payloads, xs)):
            idx_msg = encode_index_set(p.indices, length=self.size)
            msg = comm.values_message(x)
            ledger.add(idx_msg, round_=round_, client=i, direction="up", category="index")
            ledger.add(msg, round_=round_, client=i, direction="up", category="update")
            agg[decode_index_set(idx_msg)] += np.frombuffer(msg, dtype="<f4")
        support = np.flatnonzero(agg)
        down = [encode_index_set(support, length=self.size), comm.values_message(agg[support])]
        for i in range(len(payloads)):
            ledger.add(down[0], round_=round_, client=i, direction="down", category="index")
            ledger.add(down[1], round_=round_, client=i, direction="down", category="update")
        return _scatter(decode_index_set(down[0]), np.frombuffer(down[1], dtype="<f4"), self.size)


def _scatter(support: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float32)
    out[support] = values
    return out

"""How a round's client updates reach the server and come back: plaintext or CKKS.

Every transport has the same contract, so methods differ only in composition:

``round(payloads, weights=..., noise=..., ledger=..., round_=...) -> RoundResult``

* ``payloads``: one :class:`Payload` per client, dense or sparse (after top-k and
  clipping, before noise);
* ``weights``: aggregation weights (client size / total for non-DP methods; 1 / n, n the public
  number of clients, for DP methods: :func:`medhe.fl.simulate.aggregation_weights`). **Clients** multiply by
  their weight before sending, so the server only adds (under CKKS it never
  multiplies or rescales);
* ``noise``: a :class:`GaussianShares` (``noise(client, n)`` is the client's share of
  distributed Gaussian noise for the ``n`` values it transmits; ``noise.std`` is public), or
  None without DP;
* every message is serialised and counted in ``ledger`` by its length; the
  server works only on what it deserialises.

Each ``round()`` runs the protocol's roles through the in-process engine
(:func:`medhe.fl.engines.inprocess.exchange`): one client codec per client
(:mod:`medhe.fl.client`: holds the clients' shared secret key, encodes its index set and values,
decodes the aggregate) and the server's aggregator (:mod:`medhe.fl.server`: built from the public
setup message only, bytes in and bytes out), under a public :class:`~medhe.fl.plan.RoundPlan`.

The result is the weighted mean update as the clients see it after the
downlink (decrypted under CKKS), and the seconds spent per phase. All transports use the
same phase names, so their times compare: ``align`` (index sets up, union down, values
gathered at the union), ``noise`` (weighting and DP noise shares), ``quantise`` (quantisation,
its error feedback and statistics), ``encrypt``, ``aggregate`` (the server's sum; under
plaintext also serialising the updates) and ``decrypt``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from medhe import comm
from medhe import rng as rngmod
from medhe.comm import ByteLedger


@dataclass(frozen=True)
class GaussianShares:
    """Each client's share N(0, std^2) of distributed Gaussian noise, drawn per (seed, client, round).

    Called as ``noise(client, n)`` -> float32 array of n draws. ``std`` is public (it follows from
    the DP parameters), so a transport may use it to size a quantisation range.
    """

    std: float
    seed: int
    round_: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.std) and self.std >= 0):
            raise ValueError(f"noise std must be finite and >= 0, got {self.std!r}")

    def __call__(self, client: int, n: int) -> np.ndarray:
        from medhe.privacy import add_gaussian_noise

        gen = rngmod.generator(self.seed, "dp-noise", client, self.round_)
        return add_gaussian_noise(np.zeros(n, dtype=np.float32), std=self.std, rng=gen)


@dataclass(frozen=True)
class SkellamShares:
    """Each client's share of distributed Skellam noise (:mod:`medhe.skellam`), added to its *integer*
    update after quantisation, drawn per (seed, client, round).

    The integer scale (integers per unit value) is fixed by the transport each round, so the shares are
    drawn through :meth:`draw` with that round's integer L2 sensitivity: the summed noise has variance
    (z * D2)^2, each of ``num_clients`` shares (z * D2)^2 / num_clients. ``sensitivity`` is the L2
    sensitivity of the released mean in value units (C / n for the fixed-denominator estimator).
    """

    noise_multiplier: float
    sensitivity: float
    seed: int
    round_: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise ValueError(f"noise_multiplier must be finite and > 0, got {self.noise_multiplier!r}")
        if not (math.isfinite(self.sensitivity) and self.sensitivity > 0):
            raise ValueError(f"sensitivity must be finite and > 0, got {self.sensitivity!r}")

    def variance(self, l2: float) -> float:
        """Variance of the summed noise for integer L2 sensitivity ``l2``: (z * l2)^2."""
        return (self.noise_multiplier * l2) ** 2

    def draw(self, client: int, n: int, *, l2: float, num_clients: int) -> np.ndarray:
        from medhe.skellam import sample_skellam

        gen = rngmod.generator(self.seed, "dp-noise-skellam", client, self.round_)
        return sample_skellam(n, variance=self.variance(l2) / num_clients, rng=gen)


NoiseFn = GaussianShares


def quantisation_bound(*, clip_norm: float, weights: Sequence[float], num_values: int, range_factor: float | None,
                       noise_std: float = 0.0, noise_sigmas: float = 4.0) -> float:
    """The range [-b, b] every client quantises against in a round; public inputs only.

    b = signal + noise_sigmas * noise_std, where ``num_values`` is the number of values each client
    encodes this round: the size of the union of the index sets under ``union`` alignment (not k,
    and larger than k whenever the clients' index sets differ), the model size under ``dense``.
    The signal part is

    * ``range_factor=None``: the worst case C * w_max (every clipped, weighted value lies inside,
      but a clipped top-k update of k values has typical magnitude C w / sqrt(k), far below one
      8-bit step when k is large, so almost everything rounds to zero);
    * otherwise C * w_max * min(1, range_factor / sqrt(num_values)): the range of a vector of
      ``num_values`` entries with L2 norm C * w_max spread evenly, widened by ``range_factor``.
      Larger entries saturate (a transport with error feedback keeps the excess).

    The noise part keeps a client's DP noise share (std ``noise_std``) from saturating.

    >>> quantisation_bound(clip_norm=1.0, weights=[0.5, 0.5], num_values=100, range_factor=None)
    0.5
    >>> round(quantisation_bound(clip_norm=1.0, weights=[0.5, 0.5], num_values=100, range_factor=4.0, noise_std=0.01), 12)
    0.24
    """
    if not (math.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError(f"clip_norm must be finite and > 0, got {clip_norm!r}")
    if range_factor is not None and not (math.isfinite(range_factor) and range_factor > 0):
        raise ValueError(f"range_factor must be None or finite and > 0, got {range_factor!r}")
    if not (math.isfinite(noise_sigmas) and noise_sigmas >= 0):
        raise ValueError(f"noise_sigmas must be finite and >= 0, got {noise_sigmas!r}")
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be finite and >= 0, got {noise_std!r}")
    signal = clip_norm * max(weights)
    if range_factor is not None:
        signal *= min(1.0, range_factor / math.sqrt(max(num_values, 1)))
    return signal + noise_sigmas * noise_std


def noise_std(noise: GaussianShares | SkellamShares | None) -> float:
    """The public per-client noise std of ``noise`` that the quantisation range must hold (0 without noise,
    and 0 for Skellam shares, which are added after quantisation and never rounded or clipped)."""
    if noise is None or isinstance(noise, SkellamShares):
        return 0.0
    if not isinstance(noise, GaussianShares):
        raise TypeError(f"noise must be a GaussianShares (its std sizes the quantisation range), got {type(noise).__name__}")
    return float(noise.std)


@contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[phase]``."""
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - t


def own_positions(payload: "Payload", union: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the client's model indices, their positions in the vector it encoded on the round's support).

    Dense payload: every index, at itself. Sparse payload aligned ``dense``: its indices, at
    themselves. Aligned to a ``union``: its indices, at their places in the union.
    """
    if payload.indices is None:
        idx = np.arange(size, dtype=np.int64)
        return idx, idx
    idx = np.asarray(payload.indices, dtype=np.int64)
    return idx, (idx if union is None else np.searchsorted(union, idx))


def quantise_client(payload: "Payload", x: np.ndarray, weight: float, union: np.ndarray | None, *, bits: int,
                    bound: float, size: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], float, float]:
    """Quantise what one client encodes against the round's shared ``bound``: (integers, feedback, zero
    fraction, saturated fraction).

    ``feedback``: (payload indices, (x - deq(q)) / w at the client's own positions), for its
    error-feedback residual. ``x`` is what the client encoded (weighted values plus its noise share) on
    the round's common support and deq(q) what reaches the aggregate for it. The noise share is *not*
    fed back: the lost signal is w v - (deq(q) - n) = x - deq(q). Positions outside the client's own
    payload (union positions where it sent only noise) are not fed back.

    The fractions of values that quantise to zero and that saturate are over the client's *own*
    positions (not the union padding, which holds only noise or zeros); NaN if it has none.
    """
    from medhe.ckks.packing import dequantise, quantise

    q = quantise(x, bits=bits, bound=bound)
    idx, pos = own_positions(payload, union, size)
    feedback = (idx, (x[pos] - dequantise(q[pos], bits=bits, bound=bound)) / weight)
    if pos.size:
        return q, feedback, float(np.mean(q[pos] == 0)), float(np.mean(np.abs(x[pos]) > bound))
    return q, feedback, math.nan, math.nan


def quant_info(bound: float, zero: Sequence[float], saturated: Sequence[float]) -> dict[str, float]:
    """The round's quantisation columns: the bound and the clients' mean zero / saturated fractions
    (over the clients that sent own values; NaN if none did)."""
    return {"quant_bound": float(bound),
            "quant_zero_frac": float(np.mean(zero)) if len(zero) else math.nan,
            "quant_saturated_frac": float(np.mean(saturated)) if len(saturated) else math.nan}


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
    feedback: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    """Per client (payload indices, quantisation error in payload units), for its error-feedback
    residual; empty where nothing is quantised."""


def check_round_inputs(payloads: Sequence[Payload], weights: Sequence[float], size: int) -> None:
    """Shape checks shared by transports."""
    if len(payloads) == 0 or len(payloads) != len(weights):
        raise ValueError(f"need one weight per payload, got {len(payloads)} payloads and {len(weights)} weights")
    total = float(sum(weights))
    if min(weights) < 0 or not 0 < total <= 1 + 1e-9:
        # below 1 only for DP-FedAvg's fixed public denominator when fewer clients report
        raise ValueError(f"aggregation weights must be >= 0 with a sum in (0, 1], got {list(weights)!r}")
    for i, p in enumerate(payloads):
        if p.indices is None and p.values.size != size:
            raise ValueError(f"client {i}: dense payload has {p.values.size} values, the model has {size}")


def noise_to_signal(diagnostics: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """||sum_i n_i|| / ||sum_i w_i v_i|| of a round's aggregate, from each client's (w_i v_i, noise share n_i)
    on common positions (:attr:`medhe.fl.client.ClientCodec.diagnostics`); inf for a zero signal.

    It needs every client's plaintext: a simulation-only measurement, which no party of a deployment can
    compute.

    >>> noise_to_signal([(np.array([3.0, 0.0]), np.array([0.0, 1.0])), (np.array([0.0, 4.0]), np.array([0.0, 1.0]))])
    0.4
    """
    if len(diagnostics) == 0 or len({np.size(x) for x, _ in diagnostics} | {np.size(n) for _, n in diagnostics}) != 1:
        raise ValueError("noise_to_signal needs one (signal, noise) pair per client, all of one length")
    signal = np.zeros(np.size(diagnostics[0][0]))
    noise = np.zeros_like(signal)
    for x, n in diagnostics:  # client by client, in slot order
        signal += np.asarray(x, dtype=np.float64)
        noise += np.asarray(n, dtype=np.float64)
    s_norm, n_norm = float(np.linalg.norm(signal)), float(np.linalg.norm(noise))
    return n_norm / s_norm if s_norm > 0 else math.inf


class PlainTransport:
    """Plaintext float32 messages. The server sees every individual update.

    Alignment of sparse updates: ``own`` (each client sends its own index set and
    values; the cheapest plaintext top-k), or ``union`` / ``dense`` / ``global`` as under CKKS,
    so that an ablation without HE puts its noise on exactly the positions the encrypted method does.

    The round runs the roles (:class:`medhe.fl.client.PlainCodec` per client,
    :class:`medhe.fl.server.PlainAggregator`) through the in-process engine
    (:func:`medhe.fl.engines.inprocess.exchange`).
    """

    name = "plain"

    def __init__(self, *, size: int, alignment: str = "own") -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        if alignment not in ("own", "union", "dense", "global"):
            raise ValueError(f"alignment must be 'own', 'union', 'dense' or 'global', got {alignment!r}")
        self.size = size
        self.alignment = alignment

    def setup(self, ledger: ByteLedger, *, num_clients: int) -> None:
        """Plaintext needs no keys or contexts."""

    def codec(self, client: int):
        """Client ``client``'s codec (:class:`medhe.fl.client.PlainCodec`)."""
        from medhe.fl.client import PlainCodec

        return PlainCodec(client=client, size=self.size, alignment=self.alignment, keep_diagnostics=True)

    def aggregator(self):
        """The server's aggregator (nothing to set up under plaintext)."""
        from medhe.fl.server import PlainAggregator

        return PlainAggregator(None, size=self.size, alignment=self.alignment)

    def round(self, payloads: Sequence[Payload], *, weights: Sequence[float], noise: NoiseFn | None,
              ledger: ByteLedger, round_: int) -> RoundResult:
        check_round_inputs(payloads, weights, self.size)
        return run_roles(self, payloads, weights=weights, noise=noise, ledger=ledger, round_=round_,
                         server=self.aggregator())


def run_roles(transport, payloads: Sequence[Payload], *, weights: Sequence[float], noise, ledger: ByteLedger,
              round_: int, server, clip_bound: float | None = None) -> RoundResult:
    """One round of ``transport``'s roles through the in-process engine: a public plan for clients
    0..n-1, one codec per client (:meth:`codec`), the server's aggregator ``server``."""
    from medhe.fl.engines.inprocess import exchange
    from medhe.fl.plan import RoundPlan

    n = len(payloads)
    plan = RoundPlan(round=int(round_), clients=list(range(n)), weights=[float(w) for w in weights],
                     clip_bound=clip_bound, noise=RoundPlan.noise_dict(noise),
                     seed=0 if noise is None else int(noise.seed))
    server.alignment = getattr(transport, "alignment", server.alignment)
    return exchange(plan, [transport.codec(i) for i in range(n)], server, payloads, ledger=ledger)


def _scatter(support: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float32)
    out[support] = values
    return out

"""The public round plan: what the server tells every client at the start of a round.

A :class:`RoundPlan` holds public values only (JSON-serialisable): the round, the participating
clients in slot order, their aggregation weights, the round's clip bound and the public parameters
of the DP noise. Every client derives its quantisation bound from it (with the number of values it
sends, :func:`medhe.fl.transport.quantisation_bound`), so all clients quantise alike and the server
learns nothing it did not already know.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RoundPlan:
    """One round's public plan.

    Attributes:
        round: the round number (1, 2, ...; 0 is the setup).
        clients: the participating client ids, in slot order (the server's order of addition).
        weights: each participating client's aggregation weight (same order); clients multiply by it
            before sending, the server only adds.
        clip_bound: the round's public L2 clip bound (also the signal range of quantisation); None when
            the method does not clip (the transport's configured ``clip_norm`` is then used).
        noise: None without distributed DP; else ``{"mechanism": "gaussian", "std": s, "seed": seed}``
            (each client's share is N(0, s^2)) or ``{"mechanism": "skellam", "noise_multiplier": z,
            "sensitivity": D, "seed": seed}`` (integer shares sized after quantisation). ``seed`` derives
            each client's noise generator per (seed, client, round) in experiments.
        seed: the run's public seed (e.g. the ``global`` alignment's mask, :func:`medhe.sparsify.global_mask`).
    """

    round: int
    clients: list[int]
    weights: list[float]
    clip_bound: float | None = None
    noise: dict[str, Any] | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (isinstance(self.round, int) and self.round >= 1):
            raise ValueError(f"round must be an int >= 1, got {self.round!r}")
        if len(self.clients) == 0 or len(self.clients) != len(self.weights):
            raise ValueError(f"need one weight per client, got {len(self.clients)} clients and "
                             f"{len(self.weights)} weights")
        if len(set(self.clients)) != len(self.clients):
            raise ValueError(f"client ids must be unique, got {list(self.clients)!r}")
        if self.clip_bound is not None and not (math.isfinite(self.clip_bound) and self.clip_bound > 0):
            raise ValueError(f"clip_bound must be None or finite and > 0, got {self.clip_bound!r}")
        if self.noise is not None and self.noise.get("mechanism") not in ("gaussian", "skellam"):
            raise ValueError(f"noise must be None or name mechanism 'gaussian' or 'skellam', got {self.noise!r}")

    def slot(self, client: int) -> int:
        """The position of ``client`` in :attr:`clients` (raises ValueError naming it if absent)."""
        try:
            return list(self.clients).index(client)
        except ValueError:
            raise ValueError(f"client {client!r} is not in round {self.round}'s plan {list(self.clients)!r}") from None

    def weight(self, client: int) -> float:
        return float(self.weights[self.slot(client)])

    def noise_shares(self):
        """The noise object the clients draw their shares from (:class:`~medhe.fl.transport.GaussianShares`,
        :class:`~medhe.fl.transport.SkellamShares`, or None)."""
        from medhe.fl.transport import GaussianShares, SkellamShares

        if self.noise is None:
            return None
        if self.noise["mechanism"] == "gaussian":
            return GaussianShares(std=float(self.noise["std"]), seed=int(self.noise["seed"]), round_=self.round)
        return SkellamShares(noise_multiplier=float(self.noise["noise_multiplier"]),
                             sensitivity=float(self.noise["sensitivity"]), seed=int(self.noise["seed"]),
                             round_=self.round)

    @staticmethod
    def noise_dict(noise) -> dict[str, Any] | None:
        """The plan's ``noise`` entry for a GaussianShares / SkellamShares (or None)."""
        from medhe.fl.transport import GaussianShares, SkellamShares

        if noise is None:
            return None
        if isinstance(noise, GaussianShares):
            return {"mechanism": "gaussian", "std": float(noise.std), "seed": int(noise.seed)}
        if isinstance(noise, SkellamShares):
            return {"mechanism": "skellam", "noise_multiplier": float(noise.noise_multiplier),
                    "sensitivity": float(noise.sensitivity), "seed": int(noise.seed)}
        raise TypeError(f"noise must be GaussianShares, SkellamShares or None, got {type(noise).__name__}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "RoundPlan":
        d = json.loads(text)
        return cls(round=int(d["round"]), clients=[int(c) for c in d["clients"]],
                   weights=[float(w) for w in d["weights"]], clip_bound=d.get("clip_bound"), noise=d.get("noise"),
                   seed=int(d.get("seed", 0)), extra=d.get("extra", {}))

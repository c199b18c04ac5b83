"""Client-level differential privacy: clipping, distributed Gaussian noise, accounting.

Implements step 4 of MedHE (arXiv 2511.09043): each client clips its update to L2 norm C
and adds Gaussian noise; privacy is stated at the client level over T rounds, under the
**add/remove-one-client** neighbouring relation (a client's whole local dataset).

Estimator and sensitivity. A DP method releases the *fixed-denominator* estimator of
DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private Recurrent Language
Models", the estimator f~_f with every weight w_k = 1 and the public denominator W = n):

    u = (1 / n) * sum_i clip_C(x_i) + N(0, sigma^2 I),

where n is the *public* number of clients the federation is configured for
(``data.num_clients``), not the number whose data happens to be present. Adding or removing
one client changes the sum by one clipped update and leaves the denominator alone, so the
L2 sensitivity of u is exactly C / n (:func:`sensitivity_fixed_denominator`) and the noise is
sigma = z C / n (noise multiplier z). Non-DP methods (FedAvg and the rest) keep the
size-weighted mean sum_i (s_i / S) x_i unchanged (:func:`aggregation_weights`).

Why not calibrate the size-weighted mean instead: removing client j moves it by
w_j (mean of the others - x_j), of norm up to 2 w_j C; adding a client of size s moves it by
up to 2 C s / (S + s), which tends to 2 C for a large client. Its add/remove sensitivity is
therefore 2 C (10 times C / n at n = 5), or else depends on the clients' private sizes.
The fixed denominator keeps C / n with no assumption on sizes; the price is a biased
estimate when fewer than n clients report (a dropout pulls the mean towards zero), and
equal weights instead of size weights (identical for the IID partition, not for Dirichlet).

Under homomorphic encryption the server never sees an individual update, so the noise is
added by the clients in a distributed way: each adds N(0, sigma^2 / n) and the sum of n
independent shares has std sigma (:func:`noise_std_per_client`). This assumes all n clients
are honest and participate in every round; a client that drops out or colludes with the
server lowers the noise in the sum (c colluders can subtract their own shares, leaving
std sigma sqrt((n - c) / n)). Where a client *rounds* its noisy share before encryption
(packed CKKS, BFV), the released sum is not a function of the Gaussian-noised sum, and the
Gaussian accountant does not cover it: :func:`privacy_statement` then reports epsilon as
"not covered" (``quantised=...``). The integer path with a covering accountant is BFV with
the distributed Skellam mechanism (:mod:`medhe.skellam`, method ``medhe_bfv_skellam``): integer
shares added after quantisation, so the exact integer sum carries the noise.

Accounting reuses Google's ``dp_accounting`` (RDP, Mironov 2017; PLD, Koskela et al. 2020
/ Doroshenko et al. 2022) instead of re-deriving it; RDP and PLD are reported side by side.
``dp_accounting``'s Gaussian event is for sensitivity 1, so its parameter is
z = std of the summed noise / sensitivity.

Warning:
    This is a simulation. Noise is drawn from numpy's PCG64 through an explicit
    ``np.random.Generator`` seeded by (seed, client, round) (:data:`NOISE_SOURCE`): reproducible,
    which is what experiments need, but anyone who knows the seed can regenerate the noise and
    subtract it, so the guarantee holds only while the seed is secret. PCG64 is not a
    cryptographically secure RNG, and floating-point Gaussian sampling is open to the attacks
    Opacus's ``secure_mode`` documents. Do not deploy it as a privacy mechanism.

>>> round(epsilon(noise_multiplier=1.1, sampling_rate=1.0, rounds=3, delta=1e-5), 4)
8.0391
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
from typing import Any, Literal

import dp_accounting
import numpy as np
from dp_accounting import pld, rdp

__all__ = [
    "ClientLevelAccountant",
    "add_gaussian_noise",
    "aggregation_weights",
    "clip_l2",
    "epsilon",
    "noise_for_epsilon",
    "noise_std_per_client",
    "privacy_statement",
    "sensitivity_fixed_denominator",
]

Accountant = Literal["rdp", "pld"]
ACCOUNTANTS: tuple[str, ...] = ("rdp", "pld")
MECHANISM = "client-level Gaussian mechanism, noise distributed among clients"
_NEIGHBOURING = "add_or_remove_one_client"
ESTIMATOR = ("fixed-denominator mean (DP-FedAvg, McMahan et al. 2018): sum_i clip_C(x_i) / n, "
             "n = the public number of clients (data.num_clients)")
NOISE_SOURCE = ("numpy PCG64 through medhe.rng.generator(seed, 'dp-noise', client, round): reproducible, "
                "not cryptographically secure; anyone who knows the seed can regenerate and subtract the "
                "noise, so the guarantee assumes the seed is secret")
NOT_COVERED = "not covered"


# --------------------------------------------------------------------------- checks


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _check_noise_multiplier(z: float) -> float:
    if not _is_real(z) or not z >= 0 or math.isinf(z):
        raise ValueError(f"noise_multiplier must be finite and >= 0, got {z!r}")
    return float(z)


def _check_sampling_rate(q: float) -> float:
    if not _is_real(q) or not 0.0 < q <= 1.0:
        raise ValueError(f"sampling_rate must be in (0, 1], got {q!r}")
    return float(q)


def _check_rounds(rounds: int) -> int:
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    return int(rounds)


def _check_delta(delta: float) -> float:
    if not _is_real(delta) or not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    return float(delta)


def _check_positive(name: str, value: float) -> float:
    if not _is_real(value) or not 0.0 < value < math.inf:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def _check_accountant(accountant: str) -> str:
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    return accountant


# --------------------------------------------------------------------------- mechanism maths


def clip_l2(x: np.ndarray, *, max_norm: float) -> tuple[np.ndarray, float]:
    """Scale ``x`` to L2 norm at most C: ``x * min(1, C / ||x||)`` (MedHE step 4).

    The norm is computed in float64; the output keeps x's dtype and is a new array. A
    float rounding margin is applied so the output norm never exceeds ``max_norm``.

    Args:
        x: Floating array (any shape), e.g. one client's (sparse-valued) update.
        max_norm: Clip norm C > 0.

    Returns:
        ``(clipped, norm_before)``, with ``norm_before = ||x||_2`` as a Python float.

    Raises:
        ValueError: If ``max_norm <= 0`` or x is not a finite floating array.

    >>> y, n = clip_l2(np.array([6.0, 8.0]), max_norm=5.0)
    >>> y.tolist(), n
    ([3.0, 4.0], 10.0)
    """
    max_norm = _check_positive("max_norm", max_norm)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must have a floating dtype, got {x.dtype}")
    norm = float(np.linalg.norm(x.ravel().astype(np.float64, copy=False)))
    if not math.isfinite(norm):
        raise ValueError(f"x must be finite, got norm {norm!r}")
    if norm <= max_norm:
        return x.copy(), norm
    scale = max_norm / norm
    clipped = (x * x.dtype.type(scale)).astype(x.dtype, copy=False)
    # float rounding can push the norm a few ulps above C; shrink until it does not.
    while float(np.linalg.norm(clipped.ravel().astype(np.float64, copy=False))) > max_norm:
        scale *= 1.0 - 4 * np.finfo(x.dtype).eps
        clipped = (x * x.dtype.type(scale)).astype(x.dtype, copy=False)
    return clipped, norm


def noise_std_per_client(*, noise_multiplier: float, sensitivity: float, num_clients: int) -> float:
    """Per-client noise std ``z * sensitivity / sqrt(n)`` of the distributed Gaussian mechanism.

    Each of n clients adds N(0, (z S)^2 / n); the sum of the n shares is N(0, (z S)^2), the
    noise of the central Gaussian mechanism with L2 sensitivity S (S = C for the sum of clipped
    updates, S = C / n for the fixed-denominator mean, :func:`sensitivity_fixed_denominator`).
    Assumes all n clients are honest and participate.

    Args:
        noise_multiplier: z >= 0.
        sensitivity: S > 0, the L2 sensitivity of the released quantity.
        num_clients: n >= 1, the number of clients whose shares are summed.

    Returns:
        The std each client uses.

    Raises:
        ValueError: On a negative z, non-positive S or n < 1.

    >>> noise_std_per_client(noise_multiplier=1.0, sensitivity=2.0, num_clients=4)
    1.0
    """
    z = _check_noise_multiplier(noise_multiplier)
    c = _check_positive("sensitivity", sensitivity)
    if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
        raise ValueError(f"num_clients must be an integer >= 1, got {num_clients!r}")
    return z * c / math.sqrt(int(num_clients))


def aggregation_weights(sizes: list[int], *, dp: bool, num_public: int) -> list[float]:
    """Weights w_i of the released aggregate sum_i w_i x_i, one per client present.

    Non-DP methods: FedAvg's size weights s_i / sum(s) (McMahan et al. 2017). DP methods: the
    fixed public denominator of DP-FedAvg (McMahan et al. 2018), w_i = 1 / ``num_public``, so the
    weights do not depend on who is present and the sensitivity is C / ``num_public``
    (:func:`sensitivity_fixed_denominator`). Without dropouts they sum to 1.

    Args:
        sizes: Records per client present this round.
        dp: Whether the method adds DP noise.
        num_public: The public number of clients n the federation is configured for
            (>= ``len(sizes)``).

    Returns:
        One weight per client.

    Raises:
        ValueError: On an empty ``sizes``, a negative size, or ``num_public < len(sizes)``.

    >>> aggregation_weights([1, 3], dp=False, num_public=2), aggregation_weights([1, 3], dp=True, num_public=2)
    ([0.25, 0.75], [0.5, 0.5])
    """
    if len(sizes) == 0 or min(sizes) < 0 or sum(sizes) <= 0:
        raise ValueError(f"sizes must be non-negative with a positive sum, got {list(sizes)!r}")
    if isinstance(num_public, bool) or not isinstance(num_public, (int, np.integer)) or num_public < len(sizes):
        raise ValueError(f"num_public must be an integer >= the {len(sizes)} clients present, got {num_public!r}")
    if dp:
        return [1.0 / int(num_public)] * len(sizes)
    return [s / sum(sizes) for s in sizes]


def sensitivity_fixed_denominator(*, clip_norm: float, num_public: int) -> float:
    """L2 sensitivity C / n of the fixed-denominator mean under add/remove one client.

    Adding or removing one client adds or removes one update of norm <= C to the sum, and the
    public denominator n does not change (McMahan et al. 2018).

    >>> sensitivity_fixed_denominator(clip_norm=1.0, num_public=5)
    0.2
    """
    c = _check_positive("clip_norm", clip_norm)
    if isinstance(num_public, bool) or not isinstance(num_public, (int, np.integer)) or num_public < 1:
        raise ValueError(f"num_public must be an integer >= 1, got {num_public!r}")
    return c / int(num_public)


def add_gaussian_noise(x: np.ndarray, *, std: float, rng: np.random.Generator) -> np.ndarray:
    """Return ``x + N(0, std^2 I)``, drawing only from ``rng`` (Gaussian mechanism).

    Noise is drawn in x's dtype (float32 in, float32 out), so a float32 update of 67 M
    entries needs no float64 temporary.

    Args:
        x: Floating array (any shape); not modified.
        std: Noise standard deviation >= 0.
        rng: The generator to draw from, e.g. ``medhe.rng.generator(seed, "dp-noise", client, round)``.

    Returns:
        A new array with x's shape and dtype.

    Raises:
        ValueError: On a negative or non-finite std, a non-floating x, or a missing rng.
    """
    if not _is_real(std) or not 0.0 <= std < math.inf:
        raise ValueError(f"std must be finite and >= 0, got {std!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"x must be float32 or float64, got {x.dtype}")
    noise = rng.standard_normal(x.shape, dtype=x.dtype)
    noise *= x.dtype.type(std)
    noise += x
    return noise


# --------------------------------------------------------------------------- accounting


def _round_event(noise_multiplier: float, sampling_rate: float) -> dp_accounting.DpEvent:
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling_rate == 1.0:
        return gaussian
    return dp_accounting.PoissonSampledDpEvent(sampling_probability=sampling_rate, event=gaussian)


def _make_accountant(accountant: str) -> dp_accounting.PrivacyAccountant:
    if accountant == "rdp":
        return rdp.RdpAccountant()
    return pld.PLDAccountant()


@functools.lru_cache(maxsize=1024)
def _epsilon(z: float, q: float, rounds: int, delta: float, accountant: str) -> float:
    if z == 0.0:
        return math.inf
    acc = _make_accountant(accountant)
    acc.compose(dp_accounting.SelfComposedDpEvent(_round_event(z, q), rounds))
    return float(acc.get_epsilon(delta))


def epsilon(
    *,
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    accountant: Accountant = "rdp",
) -> float:
    """Client-level epsilon after ``rounds`` of the (Poisson-subsampled) Gaussian mechanism.

    One round is ``GaussianDpEvent(z)`` (sensitivity 1, so z = std / C) when every client
    takes part (q = 1), else ``PoissonSampledDpEvent(q, GaussianDpEvent(z))``; T rounds are
    a ``SelfComposedDpEvent``. RDP (Mironov 2017) or PLD (pessimistic estimate) via
    ``dp_accounting``, add/remove-one-client neighbouring relation.

    Args:
        noise_multiplier: z >= 0 (z = 0 gives ``inf``).
        sampling_rate: Per-round client sampling probability q in (0, 1].
        rounds: T >= 1.
        delta: Target delta in (0, 1).
        accountant: ``"rdp"`` or ``"pld"``.

    Returns:
        epsilon at ``delta`` (``math.inf`` if z == 0).

    Raises:
        ValueError: On any out-of-range argument, naming the value.

    >>> epsilon(noise_multiplier=0.0, sampling_rate=1.0, rounds=1, delta=1e-5)
    inf
    """
    return _epsilon(
        _check_noise_multiplier(noise_multiplier),
        _check_sampling_rate(sampling_rate),
        _check_rounds(rounds),
        _check_delta(delta),
        _check_accountant(accountant),
    )


def noise_for_epsilon(
    *,
    target_epsilon: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    accountant: Accountant = "rdp",
    tol: float = 1e-4,
) -> float:
    """Smallest noise multiplier z (within ``tol``) whose epsilon is <= ``target_epsilon``.

    Bisection in the manner of Opacus's ``get_noise_multiplier``: double z until
    ``epsilon(z) <= target``, then bisect ``[lo, hi]`` keeping ``epsilon(hi) <= target``
    as an invariant, and return ``hi``, so the answer never overshoots the target even if
    the accountant's epsilon is not perfectly monotone in z.

    Args:
        target_epsilon: Target epsilon > 0.
        sampling_rate: q in (0, 1].
        rounds: T >= 1.
        delta: Target delta in (0, 1).
        accountant: ``"rdp"`` or ``"pld"``.
        tol: Absolute tolerance on z (> 0); the result is at most ``tol`` above the
            smallest feasible z on the bisection bracket.

    Returns:
        z with ``epsilon(noise_multiplier=z, ...) <= target_epsilon``.

    Raises:
        ValueError: On out-of-range arguments, or if no z <= 2**20 reaches the target.

    >>> z = noise_for_epsilon(target_epsilon=8.0391, sampling_rate=1.0, rounds=3, delta=1e-5)
    >>> round(z, 2)
    1.1
    """
    target = _check_positive("target_epsilon", target_epsilon)
    tol = _check_positive("tol", tol)
    args = (_check_sampling_rate(sampling_rate), _check_rounds(rounds), _check_delta(delta))
    name = _check_accountant(accountant)

    def eps(z: float) -> float:
        return _epsilon(z, *args, name)

    lo, hi = 0.0, 1.0
    while eps(hi) > target:
        lo, hi = hi, 2.0 * hi
        if hi > 2.0**20:
            raise ValueError(f"no noise_multiplier <= 2**20 reaches target_epsilon={target!r}")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if eps(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


class ClientLevelAccountant:
    """Tracks client-level epsilon over FL rounds (stateful wrapper over :func:`epsilon`).

    Every round uses the same (z, q): the state is just the round count plus the epsilon
    history, in the manner of Opacus's ``RDPAccountant``, which keeps a compact history
    and hands the maths to pure functions.

    Args:
        noise_multiplier: z >= 0 (std of the summed noise divided by the clip norm).
        sampling_rate: q in (0, 1]; q = 1 when all clients take part every round.
        delta: Target delta in (0, 1).
        accountant: Accountant used for :attr:`history` and the default of :meth:`epsilon`.
    """

    def __init__(
        self,
        *,
        noise_multiplier: float,
        sampling_rate: float,
        delta: float,
        accountant: Accountant = "rdp",
    ) -> None:
        self.noise_multiplier = _check_noise_multiplier(noise_multiplier)
        self.sampling_rate = _check_sampling_rate(sampling_rate)
        self.delta = _check_delta(delta)
        self.accountant = _check_accountant(accountant)
        self.rounds = 0
        self.history: list[float] = []
        """Epsilon (by :attr:`accountant`) after each round."""

    def step(self) -> float:
        """Record one round of the mechanism; return the epsilon spent so far."""
        self.rounds += 1
        eps = self.epsilon()
        self.history.append(eps)
        return eps

    def epsilon(self, accountant: Accountant | None = None) -> float:
        """Epsilon at :attr:`delta` after the rounds so far (0.0 before any round)."""
        name = self.accountant if accountant is None else _check_accountant(accountant)
        if self.rounds == 0:
            return 0.0
        return _epsilon(self.noise_multiplier, self.sampling_rate, self.rounds, self.delta, name)

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the accountant."""
        return {
            "mechanism": MECHANISM,
            "noise_multiplier": self.noise_multiplier,
            "sampling_rate": self.sampling_rate,
            "delta": self.delta,
            "accountant": self.accountant,
            "rounds": self.rounds,
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; raises ValueError on a malformed dict."""
        expected = set(self.state_dict())
        if not isinstance(state, dict) or set(state) != expected:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must have keys {sorted(expected)}, got {got}")
        if state["mechanism"] != MECHANISM:
            raise ValueError(f"state is for mechanism {state['mechanism']!r}, expected {MECHANISM!r}")
        rounds = state["rounds"]
        if rounds != 0:
            rounds = _check_rounds(rounds)
        if len(state["history"]) != rounds:
            raise ValueError(f"history has {len(state['history'])} entries for rounds={rounds!r}")
        self.noise_multiplier = _check_noise_multiplier(state["noise_multiplier"])
        self.sampling_rate = _check_sampling_rate(state["sampling_rate"])
        self.delta = _check_delta(state["delta"])
        self.accountant = _check_accountant(state["accountant"])
        self.rounds = int(rounds)
        self.history = [float(e) for e in state["history"]]


# --------------------------------------------------------------------------- statement


CAVEATS: tuple[str, ...] = (
    "Top-k index selection is data-dependent and is NOT covered by the Gaussian mechanism: "
    "the selected index set (visible to the server when clients' index sets are aligned or "
    "sent in the clear) is an unprotected release; epsilon covers only the noised values.",
    "The paper's claimed privacy amplification by a factor (1 - s) from sparsification is "
    "NOT applied and NOT claimed here; no such amplification theorem is used.",
    "The error-feedback residual stays on the client and is never released; it does carry "
    "past updates into later rounds, which the per-round clipping bounds.",
    "Noise is distributed: each client adds N(0, sigma^2/n), so the sum has std sigma only if "
    "all n clients are honest and participate; dropouts or colluders reduce the noise.",
    "The sensitivity is that of the released estimator under add/remove-one-client: C for the "
    "sum of clipped updates, C/n for the fixed-denominator mean of DP-FedAvg; the size-weighted "
    "FedAvg mean has sensitivity up to 2C under that relation and is not what a DP run releases.",
    "No amplification by sampling: every client takes part every round unless sampling_rate < 1.",
    "The noise is seeded by (seed, client, round): anyone who knows the seed can regenerate and "
    "subtract it, so the guarantee assumes the seed is secret. Simulation RNG is numpy PCG64, "
    "not a cryptographically secure RNG; floating-point Gaussian sampling is not hardened "
    "(cf. Opacus secure_mode).",
)


def privacy_statement(
    *,
    noise_multiplier: float,
    clip_norm: float,
    num_clients: int,
    rounds: int,
    delta: float,
    sampling_rate: float = 1.0,
    sensitivity: float | None = None,
    estimator: str = "sum of clipped updates",
    quantised: str | None = None,
) -> dict[str, Any]:
    """What one run's DP guarantee is, and is not, as a flat JSON-serialisable dict.

    Client-level (add/remove one client's whole dataset) Gaussian mechanism of McMahan
    et al. (2018), epsilon by RDP and PLD (``dp_accounting``), with explicit caveats.

    Args:
        noise_multiplier: z >= 0, std of the summed noise divided by the sensitivity.
        clip_norm: C > 0.
        num_clients: n >= 1 clients sharing the noise.
        rounds: T >= 1.
        delta: Target delta in (0, 1).
        sampling_rate: q in (0, 1]; 1.0 (the default) means all clients every round.
        sensitivity: L2 sensitivity S of the released ``estimator`` under add/remove one client;
            None means C (the sum of clipped updates).
        estimator: What is released, in words (e.g. :data:`ESTIMATOR`).
        quantised: None when the released sum is the Gaussian-noised sum (plaintext, unpacked
            CKKS). Otherwise a description of the per-client rounding (e.g. "BFV, 8-bit"): each
            client clips and rounds its own noisy share, the released sum is not a function of
            the Gaussian-noised sum, and epsilon is reported as ``"not covered"``.

    Returns:
        A dict with the unit of privacy, neighbouring relation, mechanism, estimator,
        sensitivity, parameters, per-client and total noise std, epsilon by RDP and PLD (or
        ``"not covered"``), accountant names, the ``dp_accounting`` version, the noise source and
        a list of caveats.
    """
    sens = _check_positive("clip_norm", clip_norm) if sensitivity is None else _check_positive("sensitivity", sensitivity)
    per_client = noise_std_per_client(noise_multiplier=noise_multiplier, sensitivity=sens, num_clients=num_clients)
    common = dict(noise_multiplier=noise_multiplier, sampling_rate=sampling_rate, rounds=rounds, delta=delta)
    q = _check_sampling_rate(sampling_rate)
    if quantised is None:
        mechanism = MECHANISM
        eps_rdp: float | str = epsilon(**common, accountant="rdp")
        eps_pld: float | str = epsilon(**common, accountant="pld")
    else:
        mechanism = (f"Gaussian shares rounded per client ({quantised}): each client adds N(0, sigma^2/n), clips "
                     "to the quantisation range and rounds; no accountant covers this mechanism")
        eps_rdp = eps_pld = NOT_COVERED
    return {
        "unit_of_privacy": "client (a client's whole local dataset)",
        "neighbouring_relation": _NEIGHBOURING,
        "mechanism": mechanism,
        "epsilon_covered": quantised is None,
        "estimator": estimator,
        "sensitivity": sens,
        "sampling": "all clients every round (q = 1, no amplification by sampling)"
        if q == 1.0
        else f"Poisson sampling of clients with q = {q}",
        "noise_multiplier": float(noise_multiplier),
        "clip_norm": float(clip_norm),
        "num_clients": int(num_clients),
        "sampling_rate": q,
        "rounds": int(rounds),
        "delta": float(delta),
        "noise_std_per_client": per_client,
        "noise_std_of_sum": float(noise_multiplier) * sens,
        "epsilon_rdp": eps_rdp,
        "epsilon_pld": eps_pld,
        "accountants": {
            "rdp": "dp_accounting.rdp.RdpAccountant (default orders)",
            "pld": "dp_accounting.pld.PLDAccountant (pessimistic, discretization 1e-4)",
        },
        "dp_accounting_version": importlib.metadata.version("dp-accounting"),
        "noise_source": NOISE_SOURCE,
        "seed_must_be_secret": True,
        "caveats": list(CAVEATS),
    }


def epsilon_curve(*, noise_multiplier: float, rounds: int, delta: float, sampling_rate: float = 1.0) -> list[dict]:
    """Epsilon after each round 1..rounds, by RDP and PLD (for the privacy table and figure)."""
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    return [{"round": t, "noise_multiplier": noise_multiplier, "delta": delta, "sampling_rate": sampling_rate,
             "epsilon_rdp": epsilon(noise_multiplier=noise_multiplier, sampling_rate=sampling_rate, rounds=t,
                                    delta=delta, accountant="rdp"),
             "epsilon_pld": epsilon(noise_multiplier=noise_multiplier, sampling_rate=sampling_rate, rounds=t,
                                    delta=delta, accountant="pld")}
            for t in range(1, rounds + 1)]

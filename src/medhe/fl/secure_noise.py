"""DP noise shares from the operating system's CSPRNG, for deployment.

The in-process engine draws each client's Gaussian share from a generator seeded by
(seed, client, round) (:class:`medhe.fl.transport.GaussianShares`): reproducible, which experiments
need, but anyone who knows the seed (the server may) can recompute and subtract the noise. In
deployment a site draws its share here instead: uniforms from ``os.urandom`` (the OS CSPRNG,
as Python's ``secrets``), turned into normals by the Box-Muller transform. No seed exists, so no
party can replay the draw. The run record states which source every site used
(``privacy.noise_source_by_site``).

Caveat (as Opacus's ``secure_mode`` docstring): floating-point Gaussian samples leak through their
low-order bits (Mironov 2012); the packed-CKKS and BFV transports quantise each share to a few bits
before encryption, which removes those bits from what leaves the site.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

SOURCE = "os.urandom (OS CSPRNG) uniforms, Box-Muller normals; not reproducible"


def secure_normal(n: int) -> np.ndarray:
    """``n`` standard normal draws (float64) from ``os.urandom``.

    >>> x = secure_normal(20000)
    >>> bool(abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05)
    True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    m = (n + 1) // 2
    words = np.frombuffer(os.urandom(16 * m), dtype="<u8").reshape(m, 2)
    u = ((words >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53  # in (0, 1), 53 random bits
    r = np.sqrt(-2.0 * np.log(u[:, 0]))
    z = np.concatenate([r * np.cos(2 * math.pi * u[:, 1]), r * np.sin(2 * math.pi * u[:, 1])])
    return z[:n]


@dataclass(frozen=True)
class SecureGaussianShares:
    """A site's share N(0, std^2), as :class:`medhe.fl.transport.GaussianShares` but unseeded."""

    std: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.std) and self.std >= 0):
            raise ValueError(f"noise std must be finite and >= 0, got {self.std!r}")

    def __call__(self, client: int, n: int) -> np.ndarray:
        return (secure_normal(n) * self.std).astype(np.float32)

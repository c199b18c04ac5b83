"""The security-parameter table: every CKKS set the paper or the pipeline uses, measured.

For each (N, coefficient modulus) row: total bits, slots, the HE standard's security level
(classical and post-quantum columns), accepted or refused (with the reason), and, for
accepted sets, the serialised ciphertext size, the measured precision of one
encrypt/decrypt and of a 5-client sum, and the largest exact batch packing at 8 bits.
Refused sets are never handed to TenSEAL.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medhe.ckks.context import CkksParams, make_client_context
from medhe.ckks.packing import max_exact_batch
from medhe.ckks.security import InsecureParametersError, security_level
from medhe.ckks.vectors import aggregate, decrypt_vector, encrypt_vector

#: (label, N, coefficient modulus bit sizes, scale bits): the paper's set first.
PARAMETER_SETS: tuple[tuple[str, int, tuple[int, ...], int], ...] = (
    ("paper (stated 128-bit)", 8192, (60, 60, 60, 60), 40),
    ("pipeline default (closest secure to the paper)", 8192, (60, 40, 40, 60), 40),
    ("N=8192, one data prime", 8192, (60, 60), 40),
    ("N=4096", 4096, (60, 49), 40),
    ("N=16384, the paper's primes", 16384, (60, 60, 60, 60), 40),
)


def measure_set(label: str, n: int, bits: Sequence[int], scale_bits: int, *, rng: np.random.Generator,
                num_clients: int = 5, pack_bits: int = 8) -> dict[str, Any]:
    """One row of the table (see the module docstring)."""
    total = int(sum(bits))
    row: dict[str, Any] = {
        "label": label, "poly_modulus_degree": n, "coeff_mod_bit_sizes": list(bits), "total_bits": total,
        "scale_bits": scale_bits, "slots": n // 2,
        "security_classical": security_level(n, total), "security_quantum": security_level(n, total, quantum=True),
    }
    try:
        params = CkksParams(poly_modulus_degree=n, coeff_mod_bit_sizes=tuple(bits), scale_bits=scale_bits)
    except InsecureParametersError as exc:
        return {**row, "accepted": False, "reason": str(exc)}
    ctx = make_client_context(params)
    x = rng.uniform(-1, 1, size=(num_clients, n // 2))
    one = encrypt_vector(ctx, x[0])
    summed = aggregate(ctx, [encrypt_vector(ctx, xi) for xi in x])
    row.update(
        accepted=True, reason="",
        ciphertext_bytes=len(one[0]),
        bytes_per_value=len(one[0]) / (n // 2),
        max_abs_error_single=float(np.max(np.abs(decrypt_vector(ctx, one, n // 2) - x[0]))),
        max_abs_error_sum=float(np.max(np.abs(decrypt_vector(ctx, summed, n // 2) - x.sum(axis=0)))),
        max_exact_batch_8bit=int(max_exact_batch(ctx, bits=pack_bits, num_clients=num_clients, rng=rng)),
    )
    return row


def security_table(sets: Sequence[tuple[str, int, Sequence[int], int]] = PARAMETER_SETS, *,
                   rng: np.random.Generator, num_clients: int = 5) -> list[dict[str, Any]]:
    """Rows of :func:`measure_set` for every parameter set."""
    return [measure_set(label, n, bits, sb, rng=rng, num_clients=num_clients) for label, n, bits, sb in sets]

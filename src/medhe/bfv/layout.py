"""Coefficient encoding: several quantised values per BFV plaintext coefficient, as bit fields.

A value x is clipped to [-bound, bound] and quantised deterministically (``np.rint``, round half
to even; :func:`medhe.ckks.packing.quantise`) to q in [-L, L], L = 2^(b-1) - 1. The offset value
f = q + L lies in [0, 2L] (b bits). A coefficient holds F fields of w = b + c bits, with
c = ceil(log2(num_clients)) carry bits, so that the sum of up to num_clients fields never spills
into the next field, and F = floor(log2(t) / w), so that the packed sum stays below t:

    coefficient = sum_k f_k * 2^(w * k),   k = 0 .. F-1.

After the encrypted sum is decrypted, fields are cut out and num_summed * L is subtracted: the
result is the exact integer sum of the clients' q. Values j of a vector go to ciphertext
j // (N * F), coefficient (j // F) mod N, field j mod F.

>>> lay = FieldLayout(value_bits=8, num_clients=5, plain_modulus_bits=59)
>>> lay.carry_bits, lay.field_bits, lay.fields, lay.used_bits
(3, 11, 5, 55)
>>> q = np.array([-127, 0, 5, 127, 3, -1, 9])
>>> rows = pack_fields(q, lay, poly_modulus_degree=4)
>>> rows.shape
(1, 4)
>>> unpack_fields(rows * 2, lay, size=7, num_summed=1).tolist()  # rows * 2 = two clients sent q + L
[-127, 127, 137, 381, 133, 125, 145]
>>> unpack_fields(rows * 2, lay, size=7, num_summed=2).tolist()
[-254, 0, 10, 254, 6, -2, 18]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medhe.ckks.packing import carry_bits


@dataclass(frozen=True, kw_only=True)
class FieldLayout:
    """How quantised values sit in a plaintext coefficient; shared by all clients of a round.

    Attributes:
        value_bits: b, quantisation bits per value.
        num_clients: the most ciphertexts ever summed (sets the carry bits).
        plain_modulus_bits: log2(t).

    Raises:
        ValueError: if not even one field of b + carry bits fits below t, naming the numbers.
    """

    value_bits: int
    num_clients: int
    plain_modulus_bits: int

    def __post_init__(self) -> None:
        for name in ("value_bits", "plain_modulus_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ValueError(f"{name} must be an int >= 2, got {v!r}")
        carry_bits(self.num_clients)  # validates num_clients
        if self.fields < 1:
            raise ValueError(
                f"a field of {self.field_bits} bits ({self.value_bits} value bits + {self.carry_bits} carry bits "
                f"for {self.num_clients} clients) does not fit below t = 2^{self.plain_modulus_bits}"
            )
        if self.used_bits > 63:
            raise ValueError(f"packed coefficient of {self.used_bits} bits exceeds uint64")

    @property
    def levels(self) -> int:
        """L = 2^(b-1) - 1: the largest |q| and the per-field offset."""
        return (1 << (self.value_bits - 1)) - 1

    @property
    def carry_bits(self) -> int:
        """ceil(log2(num_clients))."""
        return carry_bits(self.num_clients)

    @property
    def field_bits(self) -> int:
        """w = b + carry bits."""
        return self.value_bits + self.carry_bits

    @property
    def fields(self) -> int:
        """F = floor(log2(t) / w): values per coefficient."""
        return self.plain_modulus_bits // self.field_bits

    @property
    def used_bits(self) -> int:
        """F * w: the highest bit a summed coefficient can reach."""
        return self.fields * self.field_bits

    def values_per_ciphertext(self, poly_modulus_degree: int) -> int:
        """N * F."""
        return poly_modulus_degree * self.fields


def num_ciphertexts(size: int, layout: FieldLayout, *, poly_modulus_degree: int) -> int:
    """Ciphertexts needed for ``size`` values: ceil(size / (N * F)) (at least 1)."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size!r}")
    per = layout.values_per_ciphertext(poly_modulus_degree)
    return max(1, -(-size // per))


def pack_fields(q: np.ndarray, layout: FieldLayout, *, poly_modulus_degree: int) -> np.ndarray:
    """Offset and pack quantised integers into coefficient rows; pure and exact.

    Args:
        q: 1-D integers in [-L, L].
        layout: the field layout.
        poly_modulus_degree: N, coefficients per row (plaintext).

    Returns:
        uint64 array of shape (num_ciphertexts, N); padding fields are 0.

    Raises:
        ValueError: if q is not 1-D integer or leaves [-L, L] (naming the offending value).
    """
    q = np.asarray(q)
    if q.ndim != 1 or (q.size and not np.issubdtype(q.dtype, np.integer)):
        raise ValueError(f"q must be a 1-D integer array, got dtype {q.dtype}, shape {q.shape}")
    L = layout.levels
    if q.size and (q.min() < -L or q.max() > L):
        bad = q.min() if q.min() < -L else q.max()
        raise ValueError(f"quantised value {int(bad)} outside [-{L}, {L}] for {layout.value_bits} bits")
    F, n = layout.fields, poly_modulus_degree
    rows = num_ciphertexts(q.size, layout, poly_modulus_degree=n)
    f = np.zeros(rows * n * F, dtype=np.uint64)
    f[: q.size] = (q.astype(np.int64) + L).astype(np.uint64)
    shifts = (np.arange(F, dtype=np.uint64) * np.uint64(layout.field_bits)).reshape(1, 1, F)
    return np.bitwise_or.reduce(f.reshape(rows, n, F) << shifts, axis=2)


def unpack_fields(coeffs: np.ndarray, layout: FieldLayout, *, size: int, num_summed: int) -> np.ndarray:
    """Inverse of :func:`pack_fields` for a sum of ``num_summed`` packed vectors.

    Returns:
        int64 array of the first ``size`` field sums minus ``num_summed * L``.

    Raises:
        ValueError: if num_summed exceeds the layout's client count (a field could have carried over).
    """
    if not 1 <= num_summed <= layout.num_clients:
        raise ValueError(
            f"num_summed={num_summed} outside [1, {layout.num_clients}]: the carry bits are sized for "
            f"{layout.num_clients} clients"
        )
    c = np.asarray(coeffs, dtype=np.uint64)
    F = layout.fields
    shifts = (np.arange(F, dtype=np.uint64) * np.uint64(layout.field_bits)).reshape(*([1] * c.ndim), F)
    mask = np.uint64((1 << layout.field_bits) - 1)
    fields = ((c[..., None] >> shifts) & mask).reshape(-1)
    if size > fields.size:
        raise ValueError(f"size={size} exceeds the {fields.size} packed values")
    return fields[:size].astype(np.int64) - num_summed * layout.levels

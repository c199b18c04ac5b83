""""Batch packing": several quantised values per CKKS slot, with carry room for the sum.

The paper packs B = 64 gradient values into each CKKS slot. Here a value x is clipped to
[-bound, bound] and quantised deterministically, q = rint(x / bound * L) with L = 2^(bits-1) - 1
(``np.rint``: round half to even), so q is in [-L, L]. Adding the offset L makes a field
f = q + L in [0, 2^bits - 2]. A slot holds B fields of width w = bits + carry, with
carry = ceil(log2(num_clients)), so that the sum of num_clients fields never overflows into the
next one:

    slot = sum_j f_j * 2^(w * j),   j = 0 .. B-1.

After the encrypted sum is decrypted, the slot is rounded to the nearest integer, the fields are
cut out, and num_summed * L is subtracted; the result is the exact sum of the clients' q.

The catch is precision. TenSEAL takes slot values as float64 (53-bit mantissa) and SEAL's CKKS
encoder and decoder run an FFT in double precision, so a slot can only carry about 45 bits of
exact integer (measured: see :func:`max_exact_batch`), far below B * w = 64 * 11 = 704 bits for
the paper's B = 64 at 8 bits and 5 clients. :func:`pack` refuses a spec over
:func:`precision_budget_bits`; :func:`packed_sum_is_exact` can bypass the refusal to show what
happens (the sum does not decrypt exactly).

>>> spec = PackingSpec(bits=8, num_clients=5, batch=4, bound=1.0)
>>> spec.field_bits, spec.total_bits
(11, 44)
>>> q = quantise(np.array([-1.0, 0.0, 0.5, 1.0, 0.25]), bits=8, bound=1.0)
>>> q.tolist()
[-127, 0, 64, 127, 32]
>>> unpack(pack(q, spec), spec, size=5).tolist()
[-127, 0, 64, 127, 32]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tenseal as ts

from medhe.ckks.vectors import aggregate, decrypt_vector, encrypt_vector, slot_count

_FLOAT64_MANTISSA_BITS = 53


def carry_bits(num_clients: int) -> int:
    """ceil(log2(num_clients)): the bits a field needs to absorb a sum over the clients.

    >>> [carry_bits(n) for n in (1, 2, 5, 8, 9)]
    [0, 1, 3, 3, 4]
    """
    if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
        raise ValueError(f"num_clients must be a positive int, got {num_clients!r}")
    return (num_clients - 1).bit_length()


@dataclass(frozen=True, kw_only=True)
class PackingSpec:
    """How values are quantised and packed; shared by all clients of a round.

    Attributes:
        bits: quantisation bits per value (2..32).
        num_clients: most ciphertexts that will be summed (sets the carry bits).
        batch: values per slot, B.
        bound: clip bound; values are mapped from [-bound, bound].
    """

    bits: int
    num_clients: int
    batch: int
    bound: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 2 <= self.bits <= 32:
            raise ValueError(f"bits must be an int in [2, 32], got {self.bits!r}")
        carry_bits(self.num_clients)
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch must be a positive int, got {self.batch!r}")
        if not (math.isfinite(self.bound) and self.bound > 0):
            raise ValueError(f"bound must be finite and > 0, got {self.bound!r}")

    @property
    def levels(self) -> int:
        """L = 2^(bits-1) - 1, the largest |q|; also the per-field offset."""
        return (1 << (self.bits - 1)) - 1

    @property
    def field_bits(self) -> int:
        """w = bits + carry bits."""
        return self.bits + carry_bits(self.num_clients)

    @property
    def total_bits(self) -> int:
        """B * w, the integer precision a slot must carry exactly."""
        return self.batch * self.field_bits


def quantise(values: np.ndarray, *, bits: int, bound: float) -> np.ndarray:
    """Clip to [-bound, bound] and round to integers in [-L, L], L = 2^(bits-1) - 1 (rint)."""
    PackingSpec(bits=bits, num_clients=1, batch=1, bound=bound)  # validates bits and bound
    levels = (1 << (bits - 1)) - 1
    x = np.clip(np.asarray(values, dtype=np.float64), -bound, bound)
    return np.rint(x * (levels / bound)).astype(np.int64)


def dequantise(q: np.ndarray, *, bits: int, bound: float) -> np.ndarray:
    """Map (sums of) quantised integers back to values: q * bound / L."""
    PackingSpec(bits=bits, num_clients=1, batch=1, bound=bound)
    return np.asarray(q, dtype=np.float64) * (bound / ((1 << (bits - 1)) - 1))


def _fits_int64(spec: PackingSpec) -> bool:
    return spec.total_bits <= 62


def pack(q: np.ndarray, spec: PackingSpec) -> np.ndarray:
    """Pack quantised integers, B per slot; pure and exact (no precision check here).

    Returns int64 slots when B * w <= 62 bits, else an object array of Python ints. The input is
    padded with zeros to a multiple of B.

    Raises:
        ValueError: if some |q| > L.
    """
    q = np.asarray(q, dtype=np.int64)
    if q.ndim != 1:
        raise ValueError(f"q must be 1-D, got shape {q.shape}")
    if q.size and np.abs(q).max() > spec.levels:
        raise ValueError(f"|q| must be <= {spec.levels} for bits={spec.bits}, got {np.abs(q).max()}")
    pad = (-q.size) % spec.batch
    fields = (np.concatenate([q, np.zeros(pad, np.int64)]) + spec.levels).reshape(-1, spec.batch)
    if _fits_int64(spec):
        shifts = np.arange(spec.batch, dtype=np.int64) * spec.field_bits
        return (fields << shifts).sum(axis=1)
    weights = np.array([1 << (spec.field_bits * j) for j in range(spec.batch)], dtype=object)
    return (fields.astype(object) * weights).sum(axis=1)


def unpack(slots: np.ndarray, spec: PackingSpec, *, size: int, num_summed: int = 1) -> np.ndarray:
    """Cut the fields out of integer slots and remove ``num_summed`` offsets; inverse of :func:`pack`.

    Args:
        slots: integer slot values (int64 or Python ints), e.g. a rounded decrypted sum.
        spec: the packing used.
        size: number of values to return (drops the padding).
        num_summed: how many packed vectors were added (<= spec.num_clients).
    """
    if not 1 <= num_summed <= spec.num_clients:
        raise ValueError(f"num_summed must be in [1, {spec.num_clients}], got {num_summed!r}")
    mask, w = (1 << spec.field_bits) - 1, spec.field_bits
    if _fits_int64(spec):
        s = np.asarray(slots, dtype=np.int64)[:, None]
        fields = (s >> (np.arange(spec.batch, dtype=np.int64) * w)) & mask
    else:
        fields = np.array([[(int(v) >> (w * j)) & mask for j in range(spec.batch)] for v in slots],
                          dtype=np.int64).reshape(-1, spec.batch)
    out = fields.reshape(-1)[:size] - num_summed * spec.levels
    if out.size != size:
        raise ValueError(f"slots hold {fields.size} values, fewer than size={size}")
    return out


def precision_budget_bits(ctx: ts.Context) -> int:
    """Exact-integer bits a slot can carry: min(float64 FFT limit, modulus headroom).

    float64 FFT limit: 53 - 1 - ceil(log2(N) / 2) (the encoder's double FFT error grows about
    like sqrt(N) ulp; 45 bits at N = 8192, 46 at N = 4096). Modulus headroom: data-level modulus
    bits - scale bits - 2 (value * scale must stay below q / 2 with a bit to spare).
    Conservative by design: measured (5 clients, worst case plus random trials) the first
    failing total is 51 bits at N = 8192 [60, 40, 40, 60] and 50 bits at N = 16384 [60]*4
    (budget 45 for both), and 20 bits at N = 4096 [60, 49] (budget 18). :func:`max_exact_batch`
    measures, so it can report a B above the budget.
    """
    data = ctx.seal_context().data.first_context_data()
    n = int(data.parms().poly_modulus_degree())
    q_bits = int(data.total_coeff_modulus_bit_count())
    fft_limit = _FLOAT64_MANTISSA_BITS - 1 - math.ceil(math.log2(n) / 2)
    return min(fft_limit, q_bits - round(math.log2(ctx.global_scale)) - 2)


def _check_budget(ctx: ts.Context, spec: PackingSpec) -> None:
    budget = precision_budget_bits(ctx)
    if spec.total_bits > budget:
        raise ValueError(
            f"batch={spec.batch} x field {spec.field_bits} bits (bits={spec.bits} + "
            f"{carry_bits(spec.num_clients)} carry for {spec.num_clients} clients) = "
            f"{spec.total_bits} bits per slot exceeds the {budget}-bit exact precision of this "
            f"context; the largest batch is {budget // spec.field_bits}"
        )


def encrypt_packed(ctx: ts.Context, q: np.ndarray, spec: PackingSpec, *, check: bool = True) -> list[bytes]:
    """Pack quantised integers and encrypt them; ``check=False`` skips the precision refusal."""
    if check:
        _check_budget(ctx, spec)
    slots = pack(q, spec)
    return encrypt_vector(ctx, np.asarray(slots, dtype=np.float64))


def decrypt_packed(
    ctx: ts.Context, chunks: list[bytes], spec: PackingSpec, *, size: int, num_summed: int
) -> np.ndarray:
    """Decrypt a (summed) packed vector and return the integer sums of quantised values."""
    n_slots = -(-size // spec.batch)
    x = np.rint(decrypt_vector(ctx, chunks, n_slots))
    slots = x.astype(np.int64) if _fits_int64(spec) else np.array([int(v) for v in x], dtype=object)
    return unpack(slots, spec, size=size, num_summed=num_summed)


def packed_sum_is_exact(
    ctx: ts.Context, spec: PackingSpec, *, rng: np.random.Generator, trials: int = 2,
    server_ctx: ts.Context | None = None,
) -> bool:
    """Measure: does the encrypted sum of ``spec.num_clients`` packed vectors decrypt exactly?

    Bypasses the precision refusal. Trial 0 uses the worst case (every q = +L, so every summed
    field is at its maximum); later trials draw q uniformly from [-L, L] with ``rng``. Each trial
    fills one ciphertext per client (N/2 slots, B values each).
    """
    size = slot_count(ctx) * spec.batch
    for t in range(trials):
        if t == 0:
            qs = [np.full(size, spec.levels, np.int64) for _ in range(spec.num_clients)]
        else:
            qs = [rng.integers(-spec.levels, spec.levels + 1, size) for _ in range(spec.num_clients)]
        try:
            chunks = [encrypt_packed(ctx, q, spec, check=False) for q in qs]
        except ValueError:  # SEAL: "encoded values are too large" for the modulus
            return False
        total = aggregate(server_ctx or ctx, chunks)
        got = decrypt_packed(ctx, total, spec, size=size, num_summed=spec.num_clients)
        if not np.array_equal(got, np.sum(qs, axis=0)):
            return False
    return True


def max_exact_batch(
    ctx: ts.Context, *, bits: int, num_clients: int, rng: np.random.Generator,
    trials: int = 2, max_batch: int = 64,
) -> int:
    """Largest B (1..max_batch) whose encrypted num_clients-sum decrypts exactly, by trying.

    Scans B = 1, 2, ... and stops at the first failure (returns the last success, 0 if even
    B = 1 fails). Not a proof: "exact" means all values of ``trials`` full ciphertexts matched.
    """
    best = 0
    for b in range(1, max_batch + 1):
        spec = PackingSpec(bits=bits, num_clients=num_clients, batch=b)
        if not packed_sum_is_exact(ctx, spec, rng=rng, trials=trials):
            break
        best = b
    return best

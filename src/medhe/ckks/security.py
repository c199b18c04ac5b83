"""Security checks for CKKS parameters against the HomomorphicEncryption.org standard.

The paper states that N = 8192 with a 4 x 60-bit coefficient modulus (240 bits) is "128-bit secure
under RLWE". The HomomorphicEncryption.org standard caps log2(q) at 218 bits for N = 8192 at
128-bit classical security, so that set is refused here *before* TenSEAL is called (TenSEAL's own
message, "encryption parameters are not set correctly", does not say why).

Sources:
    * Classical column: read at run time from Microsoft SEAL (``CoeffModulus.MaxBitCount``), the
      table SEAL enforces when TenSEAL builds a context.
    * Post-quantum column: Albrecht et al., "Homomorphic Encryption Security Standard",
      HomomorphicEncryption.org, 2018, the ternary-secret tables (classical and quantum max log q
      for N = 1024..32768), as transcribed in Microsoft SEAL ``native/src/seal/util/hestdparms.h``
      (``SEAL_HE_STD_PARMS_{128,192,256}_TQ``). TenSEAL 0.3.18 does not expose these constants, so
      they are copied into :data:`QUANTUM_MAX_BITS`; a test checks our classical copy against SEAL.

>>> security_level(8192, 240) is None
True
>>> security_level(8192, 200)
128
>>> closest_secure(8192, [60, 60, 60, 60], scale_bits=40)
(60, 40, 40, 60)
"""

from __future__ import annotations

from collections.abc import Sequence

SECURITY_LEVELS: tuple[int, ...] = (128, 192, 256)
SUPPORTED_N: tuple[int, ...] = (1024, 2048, 4096, 8192, 16384, 32768)
MAX_PRIME_BITS = 60  # SEAL's largest supported prime size

# HE standard, ternary secret, classical security (identical to SEAL's SEAL_HE_STD_PARMS_*_TC).
CLASSICAL_MAX_BITS: dict[int, dict[int, int]] = {
    1024: {128: 27, 192: 19, 256: 14},
    2048: {128: 54, 192: 37, 256: 29},
    4096: {128: 109, 192: 75, 256: 58},
    8192: {128: 218, 192: 152, 256: 118},
    16384: {128: 438, 192: 305, 256: 237},
    32768: {128: 881, 192: 611, 256: 476},
}
# HE standard, ternary secret, post-quantum security (SEAL's SEAL_HE_STD_PARMS_*_TQ).
QUANTUM_MAX_BITS: dict[int, dict[int, int]] = {
    1024: {128: 25, 192: 17, 256: 13},
    2048: {128: 51, 192: 35, 256: 27},
    4096: {128: 101, 192: 70, 256: 54},
    8192: {128: 202, 192: 141, 256: 109},
    16384: {128: 411, 192: 284, 256: 220},
    32768: {128: 827, 192: 571, 256: 443},
}


class InsecureParametersError(ValueError):
    """The coefficient modulus is too large for N at the requested security level."""


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n not in SUPPORTED_N:
        raise ValueError(f"poly_modulus_degree must be one of {SUPPORTED_N}, got {n!r}")


def _check_level(level: int) -> None:
    if level not in SECURITY_LEVELS:
        raise ValueError(f"security_level must be one of {SECURITY_LEVELS}, got {level!r}")


def check_bit_sizes(coeff_mod_bit_sizes: Sequence[int]) -> tuple[int, ...]:
    """Validate a list of prime sizes and return it as a tuple.

    Raises:
        ValueError: if the list is empty or a size is not an int in [2, 60].
    """
    sizes = tuple(coeff_mod_bit_sizes)
    if not sizes:
        raise ValueError("coeff_mod_bit_sizes must not be empty")
    for b in sizes:
        if isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= MAX_PRIME_BITS:
            raise ValueError(
                f"each coeff_mod_bit_size must be an int in [2, {MAX_PRIME_BITS}], got {b!r} "
                f"in {list(sizes)}"
            )
    return sizes


def max_modulus_bits(n: int, *, security_level: int = 128, quantum: bool = False) -> int:
    """Largest total log2(q) the HE standard allows for ring dimension ``n``.

    The classical value is read from SEAL (the table TenSEAL enforces); the quantum one from
    :data:`QUANTUM_MAX_BITS`.

    >>> max_modulus_bits(8192)
    218
    >>> max_modulus_bits(8192, quantum=True)
    202
    """
    _check_n(n)
    _check_level(security_level)
    if quantum:
        return QUANTUM_MAX_BITS[n][security_level]
    import tenseal.sealapi as sealapi

    sec = getattr(sealapi.SEC_LEVEL_TYPE, f"TC{security_level}")
    return int(sealapi.CoeffModulus.MaxBitCount(n, sec))


def security_level(n: int, total_bits: int, *, quantum: bool = False) -> int | None:
    """Highest standard security level (128/192/256) that (n, total_bits) satisfies, else None.

    Args:
        n: ring dimension (poly_modulus_degree).
        total_bits: sum of the coefficient-modulus prime sizes.
        quantum: use the standard's post-quantum column instead of the classical one.
    """
    _check_n(n)
    if isinstance(total_bits, bool) or not isinstance(total_bits, int) or total_bits < 1:
        raise ValueError(f"total_bits must be a positive int, got {total_bits!r}")
    ok = [lvl for lvl in SECURITY_LEVELS if total_bits <= max_modulus_bits(n, security_level=lvl, quantum=quantum)]
    return max(ok) if ok else None


def closest_secure(
    n: int, coeff_mod_bit_sizes: Sequence[int], *, scale_bits: int, security_level: int = 128
) -> tuple[int, ...]:
    """The secure prime chain at the same N that is closest to the one asked for.

    Rule (returns the input unchanged if it is already secure):
      1. keep N, the scale and the number of primes (so the multiplicative depth is kept);
      2. set every middle prime to ``scale_bits``: TenSEAL resets a ciphertext's scale to the
         global scale after each rescale, so middle primes equal to the scale keep rescaling
         unbiased (e.g. [60, 49, 49, 60] = 218 bits would fit too, but biases every rescale);
      3. if still too large, shrink the first and special primes together down to
         ``scale_bits + 1`` (the first prime must exceed the scale to decode anything);
      4. if still too large, drop middle primes (less depth). Raises if even [s+1, s+1] is too big.

    For the paper's (8192, [60, 60, 60, 60], scale 2^40) this gives [60, 40, 40, 60] (200 bits
    <= 218): the first prime keeps 20 bits of integer headroom above the scale, depth 2 is kept.

    Raises:
        InsecureParametersError: if no chain with primes > scale fits at this N.
    """
    _check_n(n)
    _check_level(security_level)
    sizes = check_bit_sizes(coeff_mod_bit_sizes)
    limit = max_modulus_bits(n, security_level=security_level)
    if sum(sizes) <= limit:
        return sizes
    if not 1 <= scale_bits < MAX_PRIME_BITS:
        raise ValueError(f"scale_bits must be in [1, {MAX_PRIME_BITS - 1}], got {scale_bits!r}")
    first, special = (sizes[0], sizes[-1]) if len(sizes) > 1 else (sizes[0], sizes[0])
    middle = max(len(sizes) - 2, 0)
    while True:
        f, s = max(first, scale_bits + 1), max(special, scale_bits + 1)
        while f + s + middle * scale_bits > limit and max(f, s) > scale_bits + 1:
            f, s = (f - 1, s) if f >= s and f > scale_bits + 1 else (f, s - 1)
        if f + s + middle * scale_bits <= limit:
            return (f, *([scale_bits] * middle), s)
        if middle == 0:
            raise InsecureParametersError(
                f"no secure prime chain at N={n} for scale 2^{scale_bits}: even "
                f"[{scale_bits + 1}, {scale_bits + 1}] exceeds the {limit}-bit limit"
            )
        middle -= 1


def check_secure(
    n: int, coeff_mod_bit_sizes: Sequence[int], *, scale_bits: int, security_level: int = 128
) -> None:
    """Refuse parameters above the HE standard's classical limit, naming N, bits and the limit.

    Raises:
        InsecureParametersError: with the total bits, the limit and the closest secure set.
        ValueError: on malformed input.
    """
    _check_n(n)
    _check_level(security_level)
    sizes = check_bit_sizes(coeff_mod_bit_sizes)
    total, limit = sum(sizes), max_modulus_bits(n, security_level=security_level)
    if total <= limit:
        return
    try:
        alt = list(closest_secure(n, sizes, scale_bits=scale_bits, security_level=security_level))
        suggestion = f"closest secure set at N={n}: {alt} ({sum(alt)} bits)"
    except InsecureParametersError:
        suggestion = f"no secure chain at N={n} for scale 2^{scale_bits}"
    bigger = [m for m in SUPPORTED_N if m > n and total <= max_modulus_bits(m, security_level=security_level)]
    if bigger:
        suggestion += f"; or keep the moduli with N={bigger[0]} (limit {max_modulus_bits(bigger[0], security_level=security_level)} bits)"
    raise InsecureParametersError(
        f"N={n} with coeff_mod_bit_sizes {list(sizes)} totals {total} bits, above the {limit}-bit "
        f"maximum for {security_level}-bit classical security (HomomorphicEncryption.org standard); "
        f"{suggestion}"
    )

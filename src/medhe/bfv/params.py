"""BFV parameters and their check against the HomomorphicEncryption.org standard.

BFV is used here only for exact integer addition (no multiplication, no key switching), so the
ciphertext size is set by the data modulus (every prime but SEAL's last, "special" one) and the
noise budget by ``data modulus bits - plain modulus bits - fresh noise``. The security check is
the CKKS path's (:func:`medhe.ckks.security.max_modulus_bits`, SEAL's classical table): the
total of *all* primes, special one included, must not exceed the limit for N.

Measured tuning (``benchmarks/bench_bfv.py``): SEAL stores each RNS residue in a 64-bit word and
compresses with zstd, so primes of exactly 32 bits serialise to 4 bytes while 33-36-bit primes
cost about 5.5; the default ``[32, 32, 45]`` (109 bits, the N = 4096 limit) therefore sends a
seeded ciphertext of about 34 KB for 20,480 values, against about 46 KB for ``[36, 36, 37]``.

>>> p = BFVParams()
>>> p.poly_modulus_degree, p.coeff_mod_bit_sizes, p.plain_modulus_bits, p.data_modulus_bits
(4096, (32, 32, 45), 55, 64)
"""

from __future__ import annotations

from dataclasses import dataclass

from medhe.ckks.security import (
    SECURITY_LEVELS,
    SUPPORTED_N,
    InsecureParametersError,
    check_bit_sizes,
    max_modulus_bits,
)

PLAIN_MODULUS_BITS_RANGE = (2, 59)  # SEAL_PLAIN_MOD_BIT_COUNT_MIN / _MAX (2^60 is refused by SEAL)
VALUE_BITS_RANGE = (2, 32)


def check_secure_bfv(n: int, coeff_mod_bit_sizes: tuple[int, ...], *, security_level: int = 128) -> None:
    """Refuse a coefficient modulus above the HE standard's classical limit for N.

    Args:
        n: ring dimension (poly_modulus_degree), one of 1024 .. 32768.
        coeff_mod_bit_sizes: all prime sizes, SEAL's special prime included.
        security_level: 128, 192 or 256.

    Raises:
        InsecureParametersError: naming N, the total bits and the limit (and the smallest larger
            N that would accept the same moduli).
        ValueError: on a malformed N, level or prime list.

    >>> check_secure_bfv(4096, (32, 32, 45))
    >>> check_secure_bfv(4096, (40, 40, 40))
    Traceback (most recent call last):
    ...
    medhe.ckks.security.InsecureParametersError: BFV N=4096 with coeff_mod_bit_sizes [40, 40, 40] totals 120 bits, above the 109-bit maximum for 128-bit classical security (HomomorphicEncryption.org standard); shrink the primes to total <= 109 bits, or use N=8192 (limit 218 bits)
    """
    sizes = check_bit_sizes(coeff_mod_bit_sizes)
    limit = max_modulus_bits(n, security_level=security_level)  # also checks n and the level
    total = sum(sizes)
    if total <= limit:
        return
    bigger = [m for m in SUPPORTED_N if m > n and total <= max_modulus_bits(m, security_level=security_level)]
    hint = f"shrink the primes to total <= {limit} bits"
    if bigger:
        hint += f", or use N={bigger[0]} (limit {max_modulus_bits(bigger[0], security_level=security_level)} bits)"
    raise InsecureParametersError(
        f"BFV N={n} with coeff_mod_bit_sizes {list(sizes)} totals {total} bits, above the {limit}-bit maximum "
        f"for {security_level}-bit classical security (HomomorphicEncryption.org standard); {hint}"
    )


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True, kw_only=True)
class BFVParams:
    """BFV parameters for exact aggregation of quantised updates (``params.yaml`` section ``bfv``).

    Attributes:
        poly_modulus_degree: ring dimension N = plaintext coefficients per ciphertext.
        coeff_mod_bit_sizes: prime sizes; with more than one prime the last is SEAL's special prime,
            which counts for security but is not stored in ciphertexts.
        plain_modulus_bits: the plain modulus is t = 2^plain_modulus_bits (coefficient encoding, no
            batching, so t need not be prime); each coefficient carries
            ``plain_modulus_bits // field_bits`` values.
        value_bits: quantisation bits per value (q in [-(2^(b-1)-1), 2^(b-1)-1]).
        security_level: 128, 192 or 256 (classical, HE standard).

    Raises:
        InsecureParametersError: if the moduli exceed the standard's limit (naming N, bits, limit).
        ValueError: on malformed values, naming them.
    """

    poly_modulus_degree: int = 4096
    coeff_mod_bit_sizes: tuple[int, ...] = (32, 32, 45)
    plain_modulus_bits: int = 55
    value_bits: int = 8
    security_level: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeff_mod_bit_sizes", check_bit_sizes(self.coeff_mod_bit_sizes))
        if self.poly_modulus_degree not in SUPPORTED_N or not _is_int(self.poly_modulus_degree):
            raise ValueError(f"bfv.poly_modulus_degree must be one of {SUPPORTED_N}, got {self.poly_modulus_degree!r}")
        if self.security_level not in SECURITY_LEVELS:
            raise ValueError(f"bfv.security_level must be one of {SECURITY_LEVELS}, got {self.security_level!r}")
        lo, hi = PLAIN_MODULUS_BITS_RANGE
        if not _is_int(self.plain_modulus_bits) or not lo <= self.plain_modulus_bits <= hi:
            raise ValueError(f"bfv.plain_modulus_bits must be an int in [{lo}, {hi}], got {self.plain_modulus_bits!r}")
        lo, hi = VALUE_BITS_RANGE
        if not _is_int(self.value_bits) or not lo <= self.value_bits <= hi:
            raise ValueError(f"bfv.value_bits must be an int in [{lo}, {hi}], got {self.value_bits!r}")
        if self.plain_modulus_bits >= self.data_modulus_bits:
            raise ValueError(
                f"bfv.plain_modulus_bits={self.plain_modulus_bits} must be below the data modulus "
                f"({self.data_modulus_bits} bits of {list(self.coeff_mod_bit_sizes)}), or no noise budget is left"
            )
        check_secure_bfv(self.poly_modulus_degree, self.coeff_mod_bit_sizes, security_level=self.security_level)

    @property
    def data_modulus_bits(self) -> int:
        """Bits of the modulus a fresh ciphertext is stored in (all primes but the special one)."""
        sizes = self.coeff_mod_bit_sizes
        return sum(sizes[:-1]) if len(sizes) > 1 else sizes[0]

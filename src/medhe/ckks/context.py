"""CKKS contexts and the key model: clients share the secret key, the server holds none.

Key model (paper step 5-6, made explicit):
    * every client holds the same client-side ``ts.Context`` with the secret key (it is shared
      out of band among the hospitals; the simulation builds it once);
    * the server receives :func:`server_context_bytes`: the encryption parameters only, no
      secret key, no public key, no relinearisation or Galois keys. Adding ciphertexts needs
      nothing more (measured: about 90 bytes). :func:`load_server_context` refuses a context
      that carries a secret key.

The encryption randomness is TenSEAL/SEAL's own (system CSPRNG); nothing here draws from numpy.
Parameters here are for an experiment, not an audited deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tenseal as ts

from medhe.ckks.security import SECURITY_LEVELS, check_bit_sizes, check_secure

ENCRYPTIONS: tuple[str, ...] = ("asymmetric", "symmetric")


@dataclass(frozen=True, kw_only=True)
class CkksParams:
    """CKKS parameters, checked against the HE standard on construction.

    Attributes:
        poly_modulus_degree: ring dimension N; a ciphertext has N/2 real slots.
        coeff_mod_bit_sizes: prime sizes; the last one is SEAL's special (key-switching) prime.
        scale_bits: global scale 2^scale_bits.
        security_level: 128, 192 or 256 (classical, HE standard).
        encryption: "asymmetric" (public-key encryption) or "symmetric" (secret-key; possible
            because all clients hold the secret key; same ciphertext size, measured).

    Raises:
        InsecureParametersError: if the total modulus exceeds the standard's limit.
        ValueError: on malformed values.
    """

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...] = field(default=(60, 40, 40, 60))
    scale_bits: int = 40
    security_level: int = 128
    encryption: str = "asymmetric"

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeff_mod_bit_sizes", check_bit_sizes(self.coeff_mod_bit_sizes))
        if isinstance(self.scale_bits, bool) or not isinstance(self.scale_bits, int) or not 1 <= self.scale_bits < 60:
            raise ValueError(f"scale_bits must be an int in [1, 59], got {self.scale_bits!r}")
        if self.security_level not in SECURITY_LEVELS:
            raise ValueError(f"security_level must be one of {SECURITY_LEVELS}, got {self.security_level!r}")
        if self.encryption not in ENCRYPTIONS:
            raise ValueError(f"encryption must be one of {ENCRYPTIONS}, got {self.encryption!r}")
        if self.scale_bits >= self.coeff_mod_bit_sizes[0]:
            raise ValueError(
                f"scale_bits={self.scale_bits} must be below the first prime "
                f"({self.coeff_mod_bit_sizes[0]} bits), or nothing decodes"
            )
        check_secure(
            self.poly_modulus_degree,
            self.coeff_mod_bit_sizes,
            scale_bits=self.scale_bits,
            security_level=self.security_level,
        )

    @property
    def slots(self) -> int:
        """Real slots per ciphertext, N/2."""
        return self.poly_modulus_degree // 2

    @property
    def data_modulus_bits(self) -> int:
        """Bits of the modulus a fresh ciphertext lives in (all primes but the special one)."""
        sizes = self.coeff_mod_bit_sizes
        return sum(sizes[:-1]) if len(sizes) > 1 else sizes[0]


def make_client_context(params: CkksParams, *, n_threads: int | None = None) -> ts.Context:
    """Build the clients' shared context (holds the secret key); no Galois keys are generated.

    TenSEAL generates relinearisation keys on construction; they stay on the client side and
    are never sent (the server only adds).
    """
    enc = ts.ENCRYPTION_TYPE.SYMMETRIC if params.encryption == "symmetric" else ts.ENCRYPTION_TYPE.ASYMMETRIC
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=params.poly_modulus_degree,
        coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        encryption_type=enc,
        n_threads=n_threads,
    )
    ctx.global_scale = 2.0**params.scale_bits
    return ctx


def _has_public_key(ctx: ts.Context) -> bool:
    try:
        return bool(ctx.has_public_key())
    except ValueError:  # TenSEAL raises for symmetric contexts
        return False


def holds_secret_key(ctx: ts.Context) -> bool:
    """Whether ``ctx`` can decrypt (``has_secret_key()``); False is what the server must show."""
    return bool(ctx.has_secret_key())


def server_context_bytes(ctx: ts.Context, *, include_public_key: bool = False) -> bytes:
    """Serialise what the server needs: parameters only (no secret, relin or Galois keys).

    Args:
        ctx: the client context.
        include_public_key: also ship the public key (only useful if the server must encrypt,
            e.g. a zero; additions do not need it). Not available with symmetric encryption.
    """
    if include_public_key and not _has_public_key(ctx):
        raise ValueError("include_public_key=True but the context has no public key (symmetric?)")
    return ctx.serialize(
        save_public_key=include_public_key,
        save_secret_key=False,
        save_galois_keys=False,
        save_relin_keys=False,
    )


def load_server_context(data: bytes) -> ts.Context:
    """Deserialise the server context, refusing one that holds a secret key.

    Raises:
        ValueError: if the bytes carry a secret key.
    """
    ctx = ts.context_from(data)
    if holds_secret_key(ctx):
        raise ValueError("refusing a server context that holds the secret key")
    return ctx


def server_context(ctx: ts.Context) -> ts.Context:
    """The server's context object: :func:`server_context_bytes` loaded back (no secret key)."""
    return load_server_context(server_context_bytes(ctx))


def public_context(ctx: ts.Context) -> ts.Context:
    """TenSEAL's own public copy (``copy(); make_context_public()``); asymmetric only.

    It keeps the public and relinearisation keys; :func:`server_context` is smaller and enough.
    """
    pub = ctx.copy()
    pub.make_context_public()
    return pub


def context_sizes(ctx: ts.Context, *, with_galois: bool = False) -> dict[str, int]:
    """Measured serialised sizes (bytes) of what a party could be sent, to count once per run.

    Keys: ``params_only`` (what the server gets), ``public_key``, ``public_relin`` (public key +
    relinearisation keys), and with ``with_galois`` ``public_relin_galois`` (Galois keys are
    generated on a copy just to measure them; slow for large N). ``secret`` is the full client
    context including the secret key (never sent to the server; shared among clients).
    """
    sizes = {"params_only": len(server_context_bytes(ctx))}
    if _has_public_key(ctx):
        sizes["public_key"] = len(ctx.serialize(save_public_key=True, save_secret_key=False,
                                                save_galois_keys=False, save_relin_keys=False))
        sizes["public_relin"] = len(ctx.serialize(save_public_key=True, save_secret_key=False,
                                                  save_galois_keys=False, save_relin_keys=True))
    if with_galois:
        gal = ctx.copy()
        gal.generate_galois_keys()
        sizes["public_relin_galois"] = len(gal.serialize(
            save_public_key=_has_public_key(gal), save_secret_key=False,
            save_galois_keys=True, save_relin_keys=True))
    sizes["secret"] = len(ctx.serialize(save_public_key=_has_public_key(ctx), save_secret_key=True,
                                        save_galois_keys=False, save_relin_keys=False))
    return sizes


def context_params(ctx: ts.Context) -> tuple[int, int, float]:
    """``(N, data-level modulus bits, global scale)`` read back from a context."""
    data = ctx.seal_context().data.first_context_data()
    return (int(data.parms().poly_modulus_degree()), int(data.total_coeff_modulus_bit_count()),
            float(ctx.global_scale))

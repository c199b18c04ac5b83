"""Encrypt, aggregate and decrypt real vectors as lists of serialised CKKS ciphertexts.

Everything crosses the API as ``bytes`` so that communication is measured as ``len()`` of real
serialisations. A vector of length d becomes ceil(d / (N/2)) ciphertexts, one value per real slot.

Aggregation is addition only. Clients multiply by their aggregation weight w_i *before*
encrypting (``weight=``), so the server never multiplies a ciphertext by a plaintext and never
rescales: TenSEAL resets a ciphertext's scale to the global scale after a rescale, which biases
the result whenever the dropped prime differs from 2^scale_bits. Sums keep the scale exactly.

Serialisation (measured, TenSEAL 0.3.18): each ciphertext is a protobuf wrapping a SEAL
ciphertext whose SEAL header says ``compr_mode = 2`` (zstd); TenSEAL offers no switch. The size
never depends on the values. When every data prime is 60 bits, zstd gains nothing and the size
is constant (raw 2 x N x primes x 8 bytes + 140; e.g. 65,676 at N = 4096, [60, 49]). With
smaller primes (e.g. [60, 40, 40, 60]) zstd squeezes the unused high bits and the size varies
by about a kilobyte between encryptions (330-332 kB vs 393 kB raw at N = 8192). A short last
chunk is a byte or two smaller (its length is a protobuf varint). See :func:`ciphertext_header`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tenseal as ts

_SEAL_MAGIC = b"\x5e\xa1"
_COMPR_MODES = {0: "none", 1: "zlib", 2: "zstd"}


def slot_count(ctx: ts.Context) -> int:
    """Real slots per ciphertext, N/2, read from the context."""
    return int(ctx.seal_context().data.first_context_data().parms().poly_modulus_degree()) // 2


def num_chunks(size: int, *, slots: int) -> int:
    """Ciphertexts needed for ``size`` values at ``slots`` per ciphertext.

    >>> num_chunks(10_000, slots=4096)
    3
    """
    if size < 0 or slots < 1:
        raise ValueError(f"need size >= 0 and slots >= 1, got size={size!r}, slots={slots!r}")
    return -(-size // slots)


def _as_vector(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("values must be finite (found NaN or inf)")
    return arr


def encrypt_vector(
    ctx: ts.Context, values: np.ndarray, *, weight: float = 1.0, scale_bits: int | None = None
) -> list[bytes]:
    """Encrypt ``weight * values`` in chunks of N/2 slots and return the serialised ciphertexts.

    Args:
        ctx: a context holding a public key (asymmetric) or the secret key (symmetric).
        values: 1-D float vector; its length need not be a multiple of N/2 (the last chunk is
            shorter; its ciphertext is the same size).
        weight: the client's aggregation weight, applied in plaintext before encryption.
        scale_bits: encode at 2^scale_bits instead of the global scale (all clients must agree).

    Returns:
        One ``bytes`` per chunk (an empty list for an empty vector).
    """
    arr = _as_vector(values)
    if not np.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight!r}")
    if weight != 1.0:
        arr = arr * float(weight)
    slots = slot_count(ctx)
    kwargs = {} if scale_bits is None else {"scale": 2.0**scale_bits}
    return [ts.ckks_vector(ctx, arr[i : i + slots], **kwargs).serialize() for i in range(0, arr.size, slots)]


def aggregate(server_ctx: ts.Context, per_client: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Server side: add the clients' ciphertexts chunk by chunk (no multiply, no rescale).

    Raises:
        ValueError: if no client sent anything or the clients sent different numbers of chunks.
    """
    if not per_client:
        raise ValueError("aggregate needs at least one client's chunks")
    counts = [len(c) for c in per_client]
    if len(set(counts)) != 1:
        raise ValueError(f"clients sent different numbers of chunks: {counts}")
    out = []
    for j in range(counts[0]):
        acc = ts.ckks_vector_from(server_ctx, per_client[0][j])
        for client in per_client[1:]:
            acc.add_(ts.ckks_vector_from(server_ctx, client[j]))
        out.append(acc.serialize())
    return out


def decrypt_vector(ctx: ts.Context, chunks: Sequence[bytes], size: int) -> np.ndarray:
    """Decrypt chunks produced by :func:`encrypt_vector`/:func:`aggregate` into ``size`` floats.

    Raises:
        ValueError: if the number of chunks does not match ``size`` or ``ctx`` has no secret key.
    """
    slots = slot_count(ctx)
    expected = num_chunks(size, slots=slots)
    if len(chunks) != expected:
        raise ValueError(f"size={size} needs {expected} chunks of {slots} slots, got {len(chunks)}")
    if not ctx.has_secret_key():
        raise ValueError("decrypt_vector needs the secret key; this context has none")
    parts = [np.asarray(ts.ckks_vector_from(ctx, c).decrypt(), dtype=np.float64) for c in chunks]
    out = np.concatenate(parts) if parts else np.zeros(0)
    if out.size != size:
        raise ValueError(f"decrypted {out.size} values, expected {size}")
    return out


@dataclass(frozen=True)
class SealHeader:
    """The SEAL serialisation header found inside a TenSEAL ciphertext blob."""

    offset: int
    version: tuple[int, int]
    compr_mode: str
    sealed_size: int


def ciphertext_header(blob: bytes) -> SealHeader:
    """Parse the (first) SEAL header in a serialised TenSEAL vector, to see its compression.

    Raises:
        ValueError: if no SEAL header is found.
    """
    start = 0
    while (i := blob.find(_SEAL_MAGIC, start)) >= 0:
        if i + 16 <= len(blob) and blob[i + 2] == 16:
            return SealHeader(
                offset=i,
                version=(blob[i + 3], blob[i + 4]),
                compr_mode=_COMPR_MODES.get(blob[i + 5], f"unknown({blob[i + 5]})"),
                sealed_size=int.from_bytes(blob[i + 8 : i + 16], "little"),
            )
        start = i + 1
    raise ValueError("no SEAL header found in the blob")


def raw_ciphertext_bytes(ctx: ts.Context) -> int:
    """Uncompressed payload of one fresh ciphertext: 2 polynomials x N x (data primes) x 8 bytes."""
    data = ctx.seal_context().data.first_context_data()
    n = int(data.parms().poly_modulus_degree())
    primes = int(ts.ckks_vector(ctx, [0.0]).ciphertext()[0].coeff_modulus_size())
    del data
    return 2 * n * primes * 8

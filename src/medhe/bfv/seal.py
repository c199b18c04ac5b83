"""BFV through ``tenseal.sealapi``: shared-secret-key clients, a key-less adding server.

Key model (as in :mod:`medhe.ckks.context`): the clients share one BFV secret key (set up out of
band). Each client encrypts symmetrically and uploads the *seeded* form of the ciphertext
(``Encryptor.encrypt_symmetric(plain)`` returns a ``Serializable`` whose ``save`` replaces the
uniformly random half c1 by the PRNG seed that generates it: about half the bytes, measured).
The server receives only the encryption parameters (:func:`parameters_bytes`, ~76 bytes), builds a
``SEALContext`` and an ``Evaluator`` from them, loads each upload into a full ciphertext
(``Ciphertext.load`` expands the seed) and adds; it holds no key of any kind. The sum is saved in
full (a sum of ciphertexts is no longer seeded) for the downlink. Clients check the invariant noise
budget before decoding and raise :class:`NoiseBudgetError` instead of decoding garbage.

Bytes: sealapi 0.3.18 saves and loads only through file paths, so every message goes through a
scratch file (:class:`_Scratch`, in /dev/shm when available) and is counted by ``len()`` of the
bytes read back. Plaintexts are built directly in SEAL's uncompressed serial format
(:func:`_plaintext_bytes`; ~40x faster than SEAL's hex-string constructor, checked in tests).

Randomness: encryption uses SEAL's own CSPRNG (Blake2xb, seeded from the system); nothing here
draws from numpy. These parameters serve an experiment, not an audited deployment.
"""

from __future__ import annotations

import os
import struct
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tenseal.sealapi as sealapi

from medhe.bfv.params import BFVParams


class NoiseBudgetError(ValueError):
    """A BFV ciphertext has no invariant noise budget left: its decryption would be garbage."""


class _Scratch:
    """One scratch file for sealapi's path-only save/load; removed when the owner is collected."""

    def __init__(self) -> None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        fd, path = tempfile.mkstemp(prefix="medhe-bfv-", dir=base)
        os.close(fd)
        self.path = path
        self._finalizer = weakref.finalize(self, _unlink, path)

    def dump(self, obj) -> bytes:
        """Bytes of ``obj.save(path)`` (a SEAL object or a Serializable)."""
        obj.save(self.path)
        return Path(self.path).read_bytes()

    def load(self, obj, context: sealapi.SEALContext, data: bytes):
        """``obj.load(context, path)`` from ``data``; returns ``obj``."""
        Path(self.path).write_bytes(data)
        obj.load(context, self.path)
        return obj


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- parameters


def encryption_parameters(params: BFVParams) -> sealapi.EncryptionParameters:
    """SEAL BFV parameters: N, the prime chain (SEAL's primes of the given sizes), t = 2^bits."""
    parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.BFV)
    n = params.poly_modulus_degree
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(sealapi.CoeffModulus.Create(n, list(params.coeff_mod_bit_sizes)))
    parms.set_plain_modulus(sealapi.Modulus(1 << params.plain_modulus_bits))
    return parms


def _context(parms: sealapi.EncryptionParameters, security_level: int) -> sealapi.SEALContext:
    sec = getattr(sealapi.SEC_LEVEL_TYPE, f"TC{security_level}")
    ctx = sealapi.SEALContext(parms, True, sec)
    if not ctx.parameters_set():
        raise ValueError(f"SEAL refused the BFV parameters: {ctx.parameters_error_message()}")
    return ctx


def parameters_bytes(params: BFVParams) -> bytes:
    """The serialised encryption parameters: everything the server receives (no keys)."""
    return _Scratch().dump(encryption_parameters(params))


# --------------------------------------------------------------------------- plaintext I/O


_HEADER = struct.Struct("<HBBBBHQ")  # SEALHeader: magic, header size, version, compr mode, reserved, size
_MAGIC = 0xA15E


def _seal_version() -> tuple[int, int]:
    data = _Scratch().dump(sealapi.Plaintext())
    magic, _, major, minor, *_ = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise RuntimeError(f"unexpected SEAL serialisation magic {magic:#x}")
    return major, minor


_VERSION: tuple[int, int] | None = None


def _plaintext_bytes(coeffs: np.ndarray) -> bytes:
    """A BFV Plaintext with these coefficients in SEAL's uncompressed serial format.

    Layout (SEAL 4.x ``Plaintext::save_members``): header, parms_id (zero: not NTT), coeff_count,
    scale (double), then the coefficient ``DynArray`` with its own header and its size.
    """
    global _VERSION
    if _VERSION is None:
        _VERSION = _seal_version()
    major, minor = _VERSION
    data = np.ascontiguousarray(coeffs, dtype="<u8").tobytes()
    dyn = struct.pack("<Q", len(coeffs)) + data
    dyn = _HEADER.pack(_MAGIC, _HEADER.size, major, minor, 0, 0, _HEADER.size + len(dyn)) + dyn
    body = bytes(32) + struct.pack("<Qd", len(coeffs), 1.0) + dyn
    return _HEADER.pack(_MAGIC, _HEADER.size, major, minor, 0, 0, _HEADER.size + len(body)) + body


def _plaintext_coeffs(plain: sealapi.Plaintext, n: int) -> np.ndarray:
    """The N coefficients of a decrypted plaintext (SEAL trims high zero coefficients)."""
    out = np.zeros(n, dtype=np.uint64)
    count = plain.coeff_count()
    out[:count] = np.fromiter((plain.data(i) for i in range(count)), dtype=np.uint64, count=count)
    return out


# --------------------------------------------------------------------------- parties


class BFVServer:
    """The aggregator: a SEALContext and an Evaluator built from the parameters alone.

    Holds no secret, public, relinearisation or Galois key, no Encryptor and no Decryptor; it can
    add ciphertexts and nothing else.
    """

    def __init__(self, parms_bytes: bytes, *, security_level: int = 128) -> None:
        io = _Scratch()
        Path(io.path).write_bytes(parms_bytes)
        parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.BFV)
        parms.load(io.path)
        self.context = _context(parms, security_level)
        self.evaluator = sealapi.Evaluator(self.context)
        self._io = io

    def aggregate(self, uploads: Sequence[Sequence[bytes]]) -> list[bytes]:
        """Ciphertext-wise sum of the clients' uploads; returns the full serialised sums.

        Args:
            uploads: per client, its list of serialised (seeded) ciphertexts; equal lengths.

        Raises:
            ValueError: if the clients sent different numbers of ciphertexts.
        """
        counts = {len(u) for u in uploads}
        if len(counts) != 1:
            raise ValueError(f"clients sent different numbers of ciphertexts: {sorted(counts)}")
        out = []
        for j in range(counts.pop()):
            acc = self._io.load(sealapi.Ciphertext(), self.context, uploads[0][j])
            for u in uploads[1:]:
                self.evaluator.add_inplace(acc, self._io.load(sealapi.Ciphertext(), self.context, u[j]))
            out.append(self._io.dump(acc))
        return out


class BFVClient:
    """A client's BFV state: the shared secret key, an Encryptor and a Decryptor.

    Build one with :meth:`create` (a fresh key, as the clients' out-of-band setup would) and pass
    it to every simulated client: they all hold the same key.
    """

    def __init__(self, params: BFVParams, *, secret_key: sealapi.SecretKey | None = None) -> None:
        self.params = params
        self.context = _context(encryption_parameters(params), params.security_level)
        if secret_key is None:
            secret_key = sealapi.KeyGenerator(self.context).secret_key()
        self._secret_key = secret_key
        self._encryptor = sealapi.Encryptor(self.context, secret_key)
        self._decryptor = sealapi.Decryptor(self.context, secret_key)
        self._io = _Scratch()

    def secret_key_bytes(self) -> bytes:
        """The serialised secret key: for the clients' out-of-band key sharing only, never for the server."""
        return self._io.dump(self._secret_key)

    @classmethod
    def from_secret_key_bytes(cls, params: BFVParams, data: bytes) -> "BFVClient":
        """A client holding the secret key that :meth:`secret_key_bytes` serialised."""
        ctx = _context(encryption_parameters(params), params.security_level)
        key = _Scratch().load(sealapi.SecretKey(), ctx, data)
        return cls(params, secret_key=key)

    def encrypt(self, rows: np.ndarray) -> list[bytes]:
        """Encrypt coefficient rows (uint64, shape (m, N), each < t) as seeded ciphertexts."""
        n, t = self.params.poly_modulus_degree, 1 << self.params.plain_modulus_bits
        rows = np.asarray(rows, dtype=np.uint64)
        if rows.ndim != 2 or rows.shape[1] != n:
            raise ValueError(f"rows must have shape (m, {n}), got {rows.shape}")
        if rows.size and int(rows.max()) >= t:
            raise ValueError(f"coefficient {int(rows.max())} >= plain modulus 2^{self.params.plain_modulus_bits}")
        out = []
        for row in rows:
            plain = self._io.load(sealapi.Plaintext(), self.context, _plaintext_bytes(row))
            out.append(self._io.dump(self._encryptor.encrypt_symmetric(plain)))
        return out

    def encrypt_full(self, row: np.ndarray) -> bytes:
        """One row encrypted and saved *without* the seed trick (for size comparisons only)."""
        plain = self._io.load(sealapi.Plaintext(), self.context, _plaintext_bytes(np.asarray(row, np.uint64)))
        ct = sealapi.Ciphertext()
        self._encryptor.encrypt_symmetric(plain, ct)
        return self._io.dump(ct)

    def noise_budget(self, blob: bytes) -> int:
        """Invariant noise budget (bits) of a serialised ciphertext; 0 means it no longer decrypts."""
        ct = self._io.load(sealapi.Ciphertext(), self.context, blob)
        return int(self._decryptor.invariant_noise_budget(ct))

    def decrypt(self, blobs: Sequence[bytes]) -> tuple[np.ndarray, int]:
        """Decrypt serialised ciphertexts to coefficient rows, after checking the noise budget.

        Returns:
            (uint64 rows of shape (len(blobs), N), the smallest noise budget seen in bits).

        Raises:
            NoiseBudgetError: if any ciphertext has no budget left (before decoding anything).
        """
        n = self.params.poly_modulus_degree
        rows = np.zeros((len(blobs), n), dtype=np.uint64)
        least = None
        for j, blob in enumerate(blobs):
            ct = self._io.load(sealapi.Ciphertext(), self.context, blob)
            budget = int(self._decryptor.invariant_noise_budget(ct))
            if budget <= 0:
                raise NoiseBudgetError(_budget_message(self.params, detail=f"ciphertext {j} of the aggregate"))
            least = budget if least is None else min(least, budget)
            plain = sealapi.Plaintext()
            self._decryptor.decrypt(ct, plain)
            rows[j] = _plaintext_coeffs(plain, n)
        return rows, (0 if least is None else least)


def _budget_message(params: BFVParams, *, detail: str) -> str:
    return (
        f"BFV noise budget exhausted ({detail}): N={params.poly_modulus_degree}, coeff_mod_bit_sizes "
        f"{list(params.coeff_mod_bit_sizes)} ({params.data_modulus_bits} data bits), plain modulus "
        f"2^{params.plain_modulus_bits}; use fewer clients, a smaller plain modulus (fewer fields per "
        f"coefficient) or larger data primes"
    )


def summed_noise_budget(client: BFVClient, server: BFVServer, *, num_clients: int) -> int:
    """Noise budget left after the server adds ``num_clients`` fresh ciphertexts (measured).

    Each ciphertext encrypts the largest coefficient t - 1 (the noise of SEAL's BFV does not depend on
    the message much; the largest one is the conservative choice). Returns 0 if none is left.
    """
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients!r}")
    n, t = client.params.poly_modulus_degree, 1 << client.params.plain_modulus_bits
    row = np.full((1, n), t - 1, dtype=np.uint64)
    agg = server.aggregate([client.encrypt(row) for _ in range(num_clients)])
    return client.noise_budget(agg[0])


def check_noise_budget(client: BFVClient, server: BFVServer, *, num_clients: int, min_bits: int = 1) -> int:
    """Refuse a (parameters, client count) pair whose aggregate keeps under ``min_bits`` of budget.

    Returns:
        The measured budget left (bits).

    Raises:
        NoiseBudgetError: naming N, the moduli, t, the client count and the budget.
    """
    left = summed_noise_budget(client, server, num_clients=num_clients)
    if left < min_bits:
        raise NoiseBudgetError(_budget_message(client.params, detail=f"{num_clients} clients leave {left} bits, "
                                                                     f"need >= {min_bits}"))
    return left

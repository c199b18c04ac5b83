"""The clients' shared key, set up out of band: one key file, copied to every site, never sent.

How the key reaches the sites is outside Flower (as in the paper's key model, :mod:`medhe.ckks.context`):
one site (or a key ceremony) runs :func:`write_key_file`, and the file is copied to every site over a
channel the server does not see (e.g. the consortium's secure file transfer). Each SuperNode names its
copy in its node config (``key-file="/path/to/ckks.key"``, or a folder holding ``ckks.key`` and ``bfv.key``); the ClientApp reads it lazily, once per
process (TenSEAL and SEAL objects do not pickle, so no process receives one: only bytes travel).

The file holds, for CKKS, the TenSEAL context serialised *with* the secret key (no Galois keys); for
BFV, the SEAL secret key. The server receives only the public setup bytes (:func:`setup_bytes`): a
CKKS context without any key, or the BFV encryption parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

from medhe.fl.methods import MethodSpec
from medhe.params import Params

_CACHE: dict[tuple[str, str, float], object] = {}


def _bfv_params(P: Params):
    from medhe.bfv import BFVParams

    b = P.bfv
    return BFVParams(poly_modulus_degree=b.poly_modulus_degree, coeff_mod_bit_sizes=b.coeff_mod_bit_sizes,
                     plain_modulus_bits=b.plain_modulus_bits, value_bits=b.value_bits,
                     security_level=b.security_level)


def write_key_file(spec: MethodSpec, P: Params, path: str | Path) -> Path | None:
    """Generate the clients' shared secret key for ``spec`` and write it to ``path`` (mode 0600).

    Returns the path, or None for a plaintext method (no key).
    """
    if spec.encryption == "none":
        return None
    path = Path(path)
    if spec.encryption == "ckks":
        from medhe import ckks
        from medhe.fl.ckks_transport import ckks_params

        ctx = ckks.make_client_context(ckks_params(P.ckks))
        data = ctx.serialize(save_public_key=True, save_secret_key=True, save_galois_keys=False,
                             save_relin_keys=False)
    else:
        from medhe.bfv import BFVClient
        from medhe.bfv.seal import _Scratch

        client = BFVClient(_bfv_params(P))
        data = _Scratch().dump(client._secret_key)  # noqa: SLF001 - the key file is the key's only copy
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def client_crypto(spec: MethodSpec, P: Params, key_file: str | Path | None):
    """The client's crypto object from its key file (cached per process): a TenSEAL context with the
    secret key (CKKS), a :class:`medhe.bfv.BFVClient` (BFV), or None (plaintext)."""
    if spec.encryption == "none":
        return None
    if not key_file:
        raise ValueError(f"method {spec.name!r} encrypts, so the client needs its key file "
                         "(node config key-file=...)")
    path = Path(key_file)
    if path.is_dir():  # a folder of keys, one per scheme (ckks.key, bfv.key)
        path = path / f"{spec.encryption}.key"
    key = (str(path.resolve()), spec.encryption, path.stat().st_mtime)
    if key not in _CACHE:
        data = path.read_bytes()
        if spec.encryption == "ckks":
            import tenseal as ts

            ctx = ts.context_from(data)
            if not ctx.has_secret_key():
                raise ValueError(f"key file {path} holds no secret key")
            _CACHE[key] = ctx
        else:
            from medhe.bfv import BFVClient
            from medhe.bfv.seal import _Scratch

            client = BFVClient(_bfv_params(P))  # parameters and a throwaway key, replaced below
            sk = _Scratch().load(_sealapi().SecretKey(), client.context, data)
            _CACHE[key] = BFVClient(_bfv_params(P), secret_key=sk)
    return _CACHE[key]


def _sealapi():
    from tenseal import sealapi

    return sealapi


def setup_bytes(spec: MethodSpec, P: Params, crypto) -> bytes:
    """The public setup a client sends the server once: parameters only, no key."""
    if spec.encryption == "none":
        return b""
    if spec.encryption == "ckks":
        from medhe import ckks

        return ckks.server_context_bytes(crypto)
    from medhe import bfv

    return bfv.parameters_bytes(crypto.params)

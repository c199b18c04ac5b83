"""The clients' shared key, set up out of band: one key file, copied to every site, never sent.

How the key reaches the sites is outside Flower (as in the paper's key model, :mod:`medhe.ckks.context`):
one site (or a key ceremony) runs :func:`write_key_file`, and the file is copied to every site over a
channel the server does not see (e.g. the consortium's secure file transfer). Each SuperNode names its
copy in its node config (``key-file="/path/to/ckks.key"``, or a folder holding ``ckks.key`` and
``bfv.key``); the ClientApp reads it lazily, once per process (TenSEAL and SEAL objects do not pickle,
so no process receives one: only bytes travel).

The file holds :func:`medhe.fl.client.key_bytes`: for CKKS, the TenSEAL context serialised *with* the
secret key; for BFV, the SEAL secret key. The server receives only the codec's public setup message
(:meth:`medhe.fl.client.ClientCodec.setup_message`): a CKKS context without any key, or the BFV
encryption parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

from medhe.fl.methods import MethodSpec
from medhe.params import Params

_CACHE: dict[tuple, object] = {}


def write_key_file(spec: MethodSpec, P: Params, path: str | Path) -> Path | None:
    """Generate the clients' shared secret key for ``spec`` and write it to ``path`` (mode 0600).

    Returns the path, or None for a plaintext method (no key).
    """
    from medhe.fl.client import key_bytes, make_keys

    if spec.encryption == "none":
        return None
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes(make_keys(spec, P)))
    return path


def client_keys(spec: MethodSpec, P: Params, key_file: str | Path | None):
    """The client's keys from its key file (cached per process): :class:`medhe.fl.client.CKKSKeys`, a
    :class:`medhe.bfv.BFVClient`, or None (plaintext)."""
    from medhe.fl.client import load_keys

    kind = spec.encryption
    if kind == "none":
        return None
    if not key_file:
        raise ValueError(f"method {spec.name!r} encrypts, so the client needs its key file "
                         "(node config key-file=...)")
    path = Path(key_file)
    if path.is_dir():  # a folder of keys, one per scheme (ckks.key, bfv.key)
        path = path / f"{kind}.key"
    if not path.is_file():
        raise FileNotFoundError(f"no key file at {path}: copy the clients' {kind}.key there (see medhe.flower.keys)")
    key = (str(path.resolve()), kind, path.stat().st_mtime, P.digest())
    if key not in _CACHE:
        _CACHE[key] = load_keys(spec, P, path.read_bytes())  # CKKSKeys refuses a context without a secret key
    return _CACHE[key]

"""The MedHE client and server roles as the Flower engine runs them: every exchange is bytes.

A client holds the shared key (read from its key file, :mod:`medhe.flower.keys`); the server holds
the public setup bytes only (a CKKS context without keys, or the BFV parameters) and adds what the
clients send. One round of a method, as messages:

1. *encode* (server -> clients: round, public weights): each client trains locally, applies top-k
   with error feedback and clipping (:class:`medhe.fl.simulate.Client`, the in-process engine's
   code). Under ``union`` alignment it answers with its index set; otherwise it answers step 2 at once;
2. *values* (``union`` only; server -> clients: the union of the index sets): the client gathers its
   values at the union, applies its weight and its DP noise share, quantises (packed CKKS, BFV),
   feeds the quantisation error back into its residual, encrypts, and answers with the ciphertexts;
3. *apply* (server -> clients: the sum of the ciphertexts): each client decrypts, applies the mean
   update to its copy of the global model, and (partition 0) evaluates it.

Every step reuses the in-process engine's pure functions (alignment, ``noisy_weighted``'s arithmetic,
:func:`~medhe.fl.transport.quantise_round`, :func:`~medhe.fl.transport.quantisation_bound`, the
CKKS/BFV encoders), so the same seed gives the same integers, hence the same model.

Methods this engine runs: every method whose clip bound is fixed (``clip_mode='fixed'``), whose
alignment is ``union``, ``dense`` or ``global``, with the whole model encrypted, Gaussian or no noise,
and no record-level DP-SGD. The others (adaptive clip bound, ``own`` alignment, head-only
encryption, Skellam, DP-SGD) raise :class:`UnsupportedMethod` naming the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medhe import comm
from medhe.fl.methods import MethodSpec
from medhe.fl.transport import Payload, quantisation_bound, quantise_round
from medhe.params import Params


class UnsupportedMethod(ValueError):
    """The Flower engine does not run this method (the reason is in the message)."""


def check_supported(spec: MethodSpec, P: Params) -> None:
    """Raise :class:`UnsupportedMethod` for a method the Flower engine does not run."""
    alignment = alignment_of(spec, P)
    reasons = []
    if spec.clip and spec.clip_mode != "fixed":
        reasons.append("an adaptive clip bound (its norm/bit exchanges are not carried)")
    if spec.sparsify and alignment == "own":
        reasons.append("alignment 'own' (the server would add plaintext values at each client's own indices)")
    if spec.encrypted_part != "all":
        reasons.append("head-only encryption")
    if spec.dp_mechanism != "gaussian":
        reasons.append("the Skellam mechanism")
    if spec.record_dp:
        reasons.append("record-level DP-SGD (its Opacus accountant state is not carried between messages)")
    if reasons:
        raise UnsupportedMethod(f"method {spec.name!r} is not run by the Flower engine: " + "; ".join(reasons))


def alignment_of(spec: MethodSpec, P: Params) -> str:
    return spec.alignment or P.sparsify.alignment


def needs_union(spec: MethodSpec, P: Params) -> bool:
    """Whether a round has the index-set exchange (sparse updates aligned at the union)."""
    return spec.sparsify and alignment_of(spec, P) == "union"


# ---------------------------------------------------------------------------- client side


@dataclass(frozen=True)
class Encoded:
    """What a client sends in a round's value step, and what it keeps to decode the sum."""

    blobs: list[bytes]
    support: np.ndarray | None
    """The round's common positions (the union, or the public mask under ``global``); None: all."""
    num_values: int
    bound: float
    feedback: tuple[np.ndarray, np.ndarray] | None
    info: dict[str, float]


def aligned_vector(payload: Payload, *, alignment: str, union: np.ndarray | None, size: int) -> np.ndarray:
    """The client's values on the round's common support (float64), as
    :func:`medhe.fl.transport.align_payloads` builds them."""
    from medhe.ckks.sparse import align_to_union, scatter_dense

    if payload.indices is None or alignment == "global":
        return payload.values.astype(np.float64)
    if alignment == "dense":
        return scatter_dense(payload.indices, payload.values, length=size)
    if union is None:
        raise ValueError("alignment 'union' needs the round's union of index sets")
    return align_to_union(payload.indices, payload.values, union)


def noisy(v: np.ndarray, *, weight: float, noise, cid: int) -> np.ndarray:
    """``w * v`` plus the client's noise share: :func:`medhe.fl.transport.noisy_weighted` for one client."""
    x = np.asarray(v, dtype=np.float64) * float(weight)
    if noise is not None:
        x = x + noise(cid, x.size).astype(np.float64)
    return x


def round_bound(spec: MethodSpec, P: Params, *, weights: Sequence[float], num_values: int, noise) -> float:
    """The round's public quantisation bound (0 where nothing is quantised)."""
    if spec.encryption == "bfv" or spec.packing:
        return quantisation_bound(clip_norm=P.dp.clip_norm, weights=weights, num_values=num_values,
                                  range_factor=P.quant.range_factor, noise_std=_std(noise),
                                  noise_sigmas=P.quant.noise_sigmas)
    return 0.0


def _std(noise) -> float:
    """The public per-client std of Gaussian shares, seeded or secure (0 without noise)."""
    return 0.0 if noise is None else float(noise.std)


def value_bits(spec: MethodSpec, P: Params) -> int:
    return P.bfv.value_bits if spec.encryption == "bfv" else P.ckks.pack_bits


def packing_spec(P: Params, bound: float):
    from medhe import ckks

    return ckks.PackingSpec(bits=P.ckks.pack_bits, num_clients=P.data.num_clients, batch=P.ckks.pack_batch,
                            bound=bound)


def bfv_layout(P: Params):
    from medhe import bfv

    return bfv.FieldLayout(value_bits=P.bfv.value_bits, num_clients=P.data.num_clients,
                           plain_modulus_bits=P.bfv.plain_modulus_bits)


def encode(spec: MethodSpec, P: Params, crypto, *, payload: Payload, cid: int, weights: Sequence[float],
           union: np.ndarray | None, noise, size: int) -> Encoded:
    """One client's value message of a round (see the module docstring, step 2)."""
    from medhe import bfv, ckks

    alignment = alignment_of(spec, P)
    if alignment == "global" and payload.indices is not None:
        union = np.asarray(payload.indices, dtype=np.int64)  # the public mask is the round's support
    v = aligned_vector(payload, alignment=alignment, union=union, size=size)
    x = noisy(v, weight=weights[cid], noise=noise, cid=cid)
    n = int(x.size)
    bound = round_bound(spec, P, weights=weights, num_values=n, noise=noise)
    info: dict[str, float] = {"encrypted_values_per_client": float(n)}
    feedback = None
    if bound > 0:
        qs, fbs, qinfo = quantise_round([payload], [x], [weights[cid]], union, bits=value_bits(spec, P), bound=bound,
                                        size=size)
        x, feedback = qs[0], fbs[0]
        info.update(qinfo)
    if spec.encryption == "none":
        blobs = [comm.values_message(x)]
    elif spec.encryption == "ckks":
        blobs = (ckks.encrypt_packed(crypto, x, packing_spec(P, bound)) if spec.packing
                 else ckks.encrypt_vector(crypto, x))
    else:
        rows = bfv.pack_fields(x, bfv_layout(P), poly_modulus_degree=P.bfv.poly_modulus_degree)
        blobs = crypto.encrypt(rows)
    return Encoded(blobs=blobs, support=union, num_values=n, bound=float(bound), feedback=feedback, info=info)


def decode(spec: MethodSpec, P: Params, crypto, blobs: Sequence[bytes], *, num_values: int, bound: float,
           num_summed: int, union: np.ndarray | None, size: int) -> tuple[np.ndarray, dict[str, float]]:
    """The mean update (float32, model length) from the server's sum, as the in-process transports
    compute it; plus round info (BFV's least noise budget)."""
    from medhe import bfv, ckks
    from medhe.ckks.packing import dequantise

    info: dict[str, float] = {}
    if spec.encryption == "none":
        total = np.frombuffer(blobs[0], dtype="<f4")
        if union is None:
            return total.copy(), info
        out = np.zeros(size, dtype=np.float32)
        out[union] = total
        return out, info
    if spec.encryption == "ckks":
        if spec.packing:
            pspec = packing_spec(P, bound)
            q = ckks.decrypt_packed(crypto, list(blobs), pspec, size=num_values, num_summed=num_summed)
            total = ckks.dequantise(np.asarray(q, dtype=np.int64), bits=pspec.bits, bound=bound)
        else:
            total = ckks.decrypt_vector(crypto, list(blobs), num_values)
        if union is None:
            return np.asarray(total).astype(np.float32), info
        return ckks.scatter_dense(union, total, length=size).astype(np.float32), info
    rows, least = crypto.decrypt(list(blobs))
    info["noise_budget_left"] = float(least)
    total = bfv.unpack_fields(rows, bfv_layout(P), size=num_values, num_summed=num_summed)
    mean = dequantise(total, bits=P.bfv.value_bits, bound=bound)
    if union is None:
        return mean.astype(np.float32), info
    from medhe.ckks.sparse import scatter_dense

    return scatter_dense(union, mean, length=size).astype(np.float32), info


# ---------------------------------------------------------------------------- server side


class ServerAggregator:
    """The server's only operation: add the clients' value messages. Built from the public setup
    bytes (no key); rejects a message that does not deserialise, naming the client."""

    def __init__(self, spec: MethodSpec, P: Params, setup: bytes) -> None:
        self.encryption = spec.encryption
        self.ctx = None
        if spec.encryption == "ckks":
            from medhe import ckks

            self.ctx = ckks.load_server_context(setup)  # refuses a context that holds a secret key
        elif spec.encryption == "bfv":
            from medhe import bfv

            self.ctx = bfv.BFVServer(setup, security_level=P.bfv.security_level)

    def aggregate(self, uploads: Sequence[Sequence[bytes]], *, clients: Sequence[int]) -> list[bytes]:
        """The sum of ``uploads`` (one list of blobs per client, ``clients`` their partition ids)."""
        lengths = {len(u) for u in uploads}
        if len(lengths) != 1:
            counts = {c: len(u) for c, u in zip(clients, uploads)}
            raise ValueError(f"clients sent different numbers of ciphertexts: {counts}")
        if self.encryption == "none":
            total = None
            for c, u in zip(clients, uploads):
                if len(u[0]) % 4:
                    raise ValueError(f"client {c}: a float32 value message of {len(u[0])} bytes")
                v = np.frombuffer(u[0], dtype="<f4")
                if total is not None and v.size != total.size:
                    raise ValueError(f"client {c}: {v.size} values, client {clients[0]} sent {total.size}")
                total = v.astype(np.float32) if total is None else total + v
            return [comm.values_message(total)]
        self._check_deserialise(uploads, clients)
        if self.encryption == "ckks":
            from medhe import ckks

            return ckks.aggregate(self.ctx, uploads)
        return self.ctx.aggregate(uploads)

    def _check_deserialise(self, uploads, clients) -> None:
        """Each client's first ciphertext must load under the server's parameters."""
        for c, u in zip(clients, uploads):
            try:
                if self.encryption == "ckks":
                    import tenseal as ts

                    ts.ckks_vector_from(self.ctx, u[0])
                else:
                    self.ctx.aggregate([u[:1]])
            except Exception as err:  # noqa: BLE001 - any failure to load is the client's fault
                raise ValueError(f"client {c}: its ciphertext does not deserialise under the server's "
                                 f"parameters ({type(err).__name__}: {err})") from None

"""CKKS transport: clients encrypt, the server only adds ciphertexts, clients decrypt.

Key model: the clients share one CKKS secret key (set up out of band); the server
holds a context **without** it (parameters only: additions need no keys) and never
multiplies or rescales. Each client applies its aggregation weight (and its share
of the DP noise) before encrypting.

Sparse updates, two index alignments (``ckks.alignment``):

* ``union``: every client uploads its top-k index set in the clear; the server
  broadcasts their union; each client encrypts its values gathered at the union
  positions (zeros where it did not select). **Reveals every client's index set
  to the server and, through the union, to the other clients.** Costs the index
  sets (up and down) plus ``|union|`` encrypted values per client.
* ``dense``: each client scatters its sparse update into the full-length vector
  and encrypts all of it. Reveals nothing but the model size; costs as much as
  encrypting the dense update (sparsity saves no bytes).

Packing (``MethodSpec.packing``): values are quantised to ``ckks.pack_bits`` bits
against a bound shared by all clients (the clip norm times the largest weight, so
it reveals nothing) and ``ckks.pack_batch`` of them are packed into each slot with
carry room for the client count (:mod:`medhe.ckks.packing`). Values beyond the
bound saturate; values below half a quantisation step round to zero. Both
fractions are recorded per round (``quant_zero_frac``, ``quant_saturated_frac``).

Memory stays bounded: vectors are encrypted, summed and decrypted in blocks of
``block_chunks`` ciphertexts; every ciphertext is still serialised and counted.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from medhe import ckks
from medhe.comm import ByteLedger
from medhe.fl.transport import NoiseFn, Payload, RoundResult, align_payloads, check_round_inputs, noisy_weighted
from medhe.params import CKKSParams


def ckks_params(cfg: CKKSParams) -> ckks.CkksParams:
    """Map ``params.yaml``'s ``ckks`` section to :class:`medhe.ckks.CkksParams` (checks security)."""
    return ckks.CkksParams(poly_modulus_degree=cfg.poly_modulus_degree, coeff_mod_bit_sizes=cfg.coeff_mod_bit_sizes,
                           scale_bits=cfg.scale_bits, security_level=cfg.security_level, encryption=cfg.encryption)


class CKKSTransport:
    """Encrypted aggregation of dense or sparse updates, with optional batch packing."""

    name = "ckks"

    def __init__(self, cfg: CKKSParams, *, size: int, packing: bool, alignment: str, clip_norm: float,
                 num_clients: int, block_chunks: int = 32) -> None:
        if alignment not in ("union", "dense"):
            raise ValueError(f"alignment must be 'union' or 'dense', got {alignment!r}")
        if block_chunks < 1:
            raise ValueError(f"block_chunks must be >= 1, got {block_chunks!r}")
        self.size = size
        self.alignment = alignment
        self.block_chunks = block_chunks
        self.params = ckks_params(cfg)  # raises InsecureParametersError before TenSEAL is touched
        self.client_ctx = ckks.make_client_context(self.params)
        self._server_ctx_bytes = ckks.server_context_bytes(self.client_ctx)
        self.server_ctx = ckks.load_server_context(self._server_ctx_bytes)
        self.slots = ckks.slot_count(self.client_ctx)
        self.packing = None
        self.clip_norm = clip_norm
        if packing:
            self.packing = ckks.PackingSpec(bits=cfg.pack_bits, num_clients=num_clients, batch=cfg.pack_batch,
                                            bound=1.0)

    def setup(self, ledger: ByteLedger, *, num_clients: int) -> None:
        """One client sends the server its parameters-only context, once (round 0)."""
        ledger.add(self._server_ctx_bytes, round_=0, client=0, direction="up", category="context")

    # ------------------------------------------------------------------ round

    def _encrypt(self, x: np.ndarray, bound: float) -> list[bytes]:
        if self.packing is None:
            return ckks.encrypt_vector(self.client_ctx, x)
        spec = self._spec(bound)
        return ckks.encrypt_packed(self.client_ctx, ckks.quantise(x, bits=spec.bits, bound=bound), spec)

    def _spec(self, bound: float) -> ckks.PackingSpec:
        p = self.packing
        return ckks.PackingSpec(bits=p.bits, num_clients=p.num_clients, batch=p.batch, bound=bound)

    def _decrypt(self, chunks: list[bytes], n: int, bound: float, num_summed: int) -> np.ndarray:
        if self.packing is None:
            return ckks.decrypt_vector(self.client_ctx, chunks, n)
        spec = self._spec(bound)
        q = ckks.decrypt_packed(self.client_ctx, chunks, spec, size=n, num_summed=num_summed)
        return ckks.dequantise(np.asarray(q, dtype=np.int64), bits=spec.bits, bound=bound)

    def round(self, payloads: Sequence[Payload], *, weights: Sequence[float], noise: NoiseFn | None,
              ledger: ByteLedger, round_: int) -> RoundResult:
        check_round_inputs(payloads, weights, self.size)
        timings = {"encrypt": 0.0, "aggregate": 0.0, "decrypt": 0.0}
        union, vectors = align_payloads(payloads, alignment=self.alignment, size=self.size, ledger=ledger,
                                        round_=round_)
        n = int(vectors[0].size)
        xs = noisy_weighted(vectors, weights, noise)
        bound = self.clip_norm * max(weights)
        info: dict[str, float] = {"encrypted_values_per_client": float(n)}
        if self.packing is not None:
            spec = self._spec(bound)
            step = bound / spec.levels
            allx = np.concatenate(xs)
            info["quant_zero_frac"] = float(np.mean(np.abs(allx) < step / 2))
            info["quant_saturated_frac"] = float(np.mean(np.abs(allx) > bound))
        per_slot = 1 if self.packing is None else self.packing.batch
        block = self.block_chunks * self.slots * per_slot  # values per block
        total = np.zeros(n, dtype=np.float64)
        n_ciphertexts = 0
        for start in range(0, n, block):
            stop = min(n, start + block)
            sent = []
            for i, x in enumerate(xs):
                t = time.perf_counter()
                chunks = self._encrypt(x[start:stop], bound)
                timings["encrypt"] += time.perf_counter() - t
                ledger.add(chunks, round_=round_, client=i, direction="up", category="ciphertext")
                sent.append(chunks)
            n_ciphertexts += len(sent[0])
            t = time.perf_counter()
            agg = ckks.aggregate(self.server_ctx, sent)
            timings["aggregate"] += time.perf_counter() - t
            for i in range(len(xs)):
                ledger.add(agg, round_=round_, client=i, direction="down", category="ciphertext")
            t = time.perf_counter()
            # every client decrypts the same broadcast; decrypted once here, timed for one client
            total[start:stop] = self._decrypt(agg, stop - start, bound, len(xs))
            timings["decrypt"] += time.perf_counter() - t
        info["ciphertexts_per_client"] = float(n_ciphertexts)
        if union is None:
            mean = total.astype(np.float32)
        else:
            mean = ckks.scatter_dense(union, total, length=self.size).astype(np.float32)
            info["union_density"] = union.size / self.size
        return RoundResult(mean, timings, info)

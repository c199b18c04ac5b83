"""CKKS transport: clients encrypt, the server only adds ciphertexts, clients decrypt.

Key model: the clients share one CKKS secret key (set up out of band); the server
holds a context **without** it (parameters only: additions need no keys) and never
multiplies or rescales. Each client applies its aggregation weight (and its share
of the DP noise) before encrypting.

Sparse updates, three index alignments:

* ``union``: every client uploads its top-k index set in the clear; the server
  broadcasts their union; each client encrypts its values gathered at the union
  positions (zeros where it did not select). **Reveals every client's index set
  to the server and, through the union, to the other clients.** Costs the index
  sets (up and down) plus ``|union|`` encrypted values per client.
* ``global``: every client sends its values at one public mask of k positions that each derives
  from public data (:func:`medhe.sparsify.global_mask`); no index set travels and the server
  learns nothing but k. Costs k encrypted values per client.
* ``dense``: each client scatters its sparse update into the full-length vector
  and encrypts all of it. Reveals nothing but the model size; costs as much as
  encrypting the dense update (sparsity saves no bytes).

Packing (``MethodSpec.packing``): values are quantised to ``ckks.pack_bits`` bits
against a bound shared by all clients and computed from public values only
(:func:`medhe.fl.transport.quantisation_bound`: the clip norm, the weights, the
number of values sent, ``range_factor`` and the DP noise std), and ``ckks.pack_batch``
of them are packed into each slot with carry room for the client count
(:mod:`medhe.ckks.packing`). Values beyond the bound saturate; values below half a
quantisation step round to zero. Both fractions, over each client's own positions
(not the union padding), are recorded per round (``quant_zero_frac``, ``quant_saturated_frac``;
:func:`medhe.fl.transport.quantise_client`). The quantisation error goes back
into each client's error-feedback residual (``RoundResult.feedback``, as under BFV),
so nothing is lost over rounds.

Memory stays bounded: vectors are encrypted, summed and decrypted in blocks of
``block_chunks`` ciphertexts; every ciphertext is still serialised and counted.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medhe import ckks
from medhe.comm import ByteLedger
from medhe.fl.transport import (NoiseFn, Payload, RoundResult, check_round_inputs, noise_std, quantisation_bound,
                                 run_roles)
from medhe.params import CKKSParams


def ckks_params(cfg: CKKSParams) -> ckks.CkksParams:
    """Map ``params.yaml``'s ``ckks`` section to :class:`medhe.ckks.CkksParams` (checks security)."""
    return ckks.CkksParams(poly_modulus_degree=cfg.poly_modulus_degree, coeff_mod_bit_sizes=cfg.coeff_mod_bit_sizes,
                           scale_bits=cfg.scale_bits, security_level=cfg.security_level, encryption=cfg.encryption)


class CKKSTransport:
    """Encrypted aggregation of dense or sparse updates, with optional batch packing.

    Holds the clients' shared key (:class:`medhe.fl.client.CKKSKeys`, one object for all simulated clients)
    and the server's :class:`medhe.fl.server.CKKSAggregator`, built from the parameters-only setup message
    alone. A round runs one :class:`medhe.fl.client.CKKSCodec` per client through the in-process engine
    (:func:`medhe.fl.engines.inprocess.exchange`).
    """

    name = "ckks"

    def __init__(self, cfg: CKKSParams, *, size: int, packing: bool, alignment: str, clip_norm: float,
                 num_clients: int, range_factor: float | None = None, noise_sigmas: float = 4.0,
                 block_chunks: int = 32) -> None:
        from medhe.fl.client import CKKSKeys
        from medhe.fl.server import CKKSAggregator

        if alignment not in ("union", "dense", "global"):
            raise ValueError(f"alignment must be 'union', 'dense' or 'global', got {alignment!r}")
        if block_chunks < 1:
            raise ValueError(f"block_chunks must be >= 1, got {block_chunks!r}")
        self.size = size
        self.alignment = alignment
        self.block_chunks = block_chunks
        self.params = ckks_params(cfg)  # raises InsecureParametersError before TenSEAL is touched
        self.keys = CKKSKeys(self.params)
        self.client_ctx = self.keys.context
        self._server_ctx_bytes = self.keys.setup_message()
        self.server = CKKSAggregator(self._server_ctx_bytes, size=size, alignment=alignment)
        self.server_ctx = self.server.context
        self.slots = self.keys.slots
        self.packing = None
        self.clip_norm = clip_norm
        self.range_factor = range_factor
        self.noise_sigmas = noise_sigmas
        quantisation_bound(clip_norm=clip_norm, weights=[1.0], num_values=1, range_factor=range_factor,
                           noise_sigmas=noise_sigmas)  # checks the arguments
        if packing:
            self.packing = ckks.PackingSpec(bits=cfg.pack_bits, num_clients=num_clients, batch=cfg.pack_batch,
                                            bound=1.0)

    def setup(self, ledger: ByteLedger, *, num_clients: int) -> None:
        """One client sends the server its parameters-only context, once (round 0)."""
        ledger.add(self._server_ctx_bytes, round_=0, client=0, direction="up", category="context")

    def bound(self, weights: Sequence[float], num_values: int, noise: NoiseFn | None = None) -> float:
        """The packing's quantisation bound shared by all clients of a round (public inputs only)."""
        return quantisation_bound(clip_norm=self.clip_norm, weights=weights, num_values=num_values,
                                  range_factor=self.range_factor, noise_std=noise_std(noise),
                                  noise_sigmas=self.noise_sigmas)

    def aggregator(self):
        """The server's :class:`medhe.fl.server.CKKSAggregator` (parameters-only context)."""
        return self.server

    def codec(self, client: int):
        """Client ``client``'s codec, holding the shared key."""
        from medhe.fl.client import CKKSCodec

        return CKKSCodec(self.keys, packing=self.packing, block_chunks=self.block_chunks, client=client,
                         size=self.size, alignment=self.alignment, clip_norm=self.clip_norm,
                         range_factor=self.range_factor, noise_sigmas=self.noise_sigmas, keep_diagnostics=True)

    def round(self, payloads: Sequence[Payload], *, weights: Sequence[float], noise: NoiseFn | None,
              ledger: ByteLedger, round_: int) -> RoundResult:
        check_round_inputs(payloads, weights, self.size)
        return run_roles(self, payloads, weights=weights, noise=noise, ledger=ledger, round_=round_,
                         server=self.aggregator(), clip_bound=float(self.clip_norm))

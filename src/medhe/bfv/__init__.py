"""medhe.bfv: exact integer aggregation of quantised sparse updates with SEAL's BFV scheme.

Quantised updates are integers and the server only adds, so BFV (exact modular integers) fits
better than CKKS (approximate reals): several quantised values are packed as bit fields into each
plaintext *coefficient* (no batch encoder), clients encrypt with their shared secret key and
upload seeded ciphertexts, the key-less server adds them, and the decrypted sum is exact.

Sub-modules: ``params`` (:class:`BFVParams`, the HE-standard check), ``layout`` (field packing,
pure), ``seal`` (sealapi I/O, :class:`BFVClient`, :class:`BFVServer`, noise-budget checks).
The transport is :class:`medhe.fl.bfv_transport.BFVTransport`.
"""

from medhe.bfv.layout import FieldLayout, num_ciphertexts, pack_fields, unpack_fields
from medhe.bfv.params import BFVParams, check_secure_bfv
from medhe.bfv.seal import (
    BFVClient,
    BFVServer,
    NoiseBudgetError,
    check_noise_budget,
    encryption_parameters,
    parameters_bytes,
    summed_noise_budget,
)

__all__ = [
    "BFVClient", "BFVParams", "BFVServer", "FieldLayout", "NoiseBudgetError", "check_noise_budget",
    "check_secure_bfv", "encryption_parameters", "num_ciphertexts", "pack_fields", "parameters_bytes",
    "summed_noise_budget", "unpack_fields",
]

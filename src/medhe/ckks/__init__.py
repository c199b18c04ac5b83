"""medhe.ckks: CKKS (TenSEAL) encryption for federated aggregation by addition.

Sub-modules: ``security`` (HE-standard checks, pure), ``context`` (parameters and the key
model), ``vectors`` (chunked encrypt / aggregate / decrypt as bytes), ``packing`` (quantise and
pack several values per slot), ``sparse`` (index sets for top-k under HE).

Paper (MedHE, arXiv 2511.09043, step 5): N = 8192, 4 x 60-bit primes, scale 2^40, B = 64 values
per slot. Differences found here: the 240-bit modulus is not 128-bit secure at N = 8192
(refused; closest secure set [60, 40, 40, 60]), and B = 64 does not decrypt exactly (a slot
carries about 45 exact bits). These parameters serve an experiment, not a deployment.
"""

from medhe.ckks.context import (
    CkksParams,
    context_params,
    context_sizes,
    holds_secret_key,
    load_server_context,
    make_client_context,
    public_context,
    server_context,
    server_context_bytes,
)
from medhe.ckks.packing import (
    PackingSpec,
    carry_bits,
    decrypt_packed,
    dequantise,
    encrypt_packed,
    max_exact_batch,
    pack,
    packed_sum_is_exact,
    precision_budget_bits,
    quantise,
    unpack,
)
from medhe.ckks.security import (
    InsecureParametersError,
    check_secure,
    closest_secure,
    max_modulus_bits,
    security_level,
)
from medhe.ckks.sparse import (
    align_to_union,
    decode_index_set,
    encode_index_set,
    index_set_sizes,
    scatter_dense,
    union_index_sets,
)
from medhe.ckks.vectors import (
    aggregate,
    ciphertext_header,
    decrypt_vector,
    encrypt_vector,
    num_chunks,
    raw_ciphertext_bytes,
    slot_count,
)

__all__ = [
    "CkksParams", "InsecureParametersError", "PackingSpec",
    "aggregate", "align_to_union", "carry_bits", "check_secure", "ciphertext_header",
    "closest_secure", "context_params", "context_sizes", "decode_index_set", "decrypt_packed",
    "decrypt_vector", "dequantise", "encode_index_set", "encrypt_packed", "encrypt_vector",
    "holds_secret_key", "index_set_sizes", "load_server_context", "make_client_context",
    "max_exact_batch", "max_modulus_bits", "num_chunks", "pack", "packed_sum_is_exact",
    "precision_budget_bits", "public_context", "quantise", "raw_ciphertext_bytes", "scatter_dense",
    "security_level", "server_context", "server_context_bytes", "slot_count", "union_index_sets",
    "unpack",
]

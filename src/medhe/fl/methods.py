"""The paper's methods and ablations as compositions of the same parts.

A method is a :class:`MethodSpec`: which client-side steps run (top-k with or
without error feedback and the EMA threshold, L2 clipping, distributed Gaussian
noise, record-level DP-SGD in local training) and which transport carries the update (plaintext, or CKKS with or without
batch packing). Nothing is copied per method: :mod:`medhe.fl.simulate` reads the
spec and composes the parts, so an ablation differs from ``medhe`` in exactly the
flag it names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """One federated method: client-side steps plus transport."""

    name: str
    sparsify: bool = False  # top-k on the round update
    error_feedback: bool = False  # keep what was not sent in a local residual
    adaptive: bool = False  # EMA-smoothed keep-threshold instead of the exact top-k
    clip: bool = False  # L2-clip the sent update to dp.clip_norm
    noise: bool = False  # distributed Gaussian noise, multiplier dp.noise_multiplier
    record_dp: bool = False  # record-level DP-SGD inside each client (medhe.dpsgd, Opacus; params dp_sgd)
    encryption: str = "none"  # "none", "ckks" or "bfv" (exact integer aggregation, medhe.bfv)
    packing: bool = False  # CKKS batch packing (quantise + several values per slot)
    alignment: str | None = None  # sparse aggregation; None: sparsify.alignment from params; "own": plaintext only

    def __post_init__(self) -> None:
        if self.encryption not in ("none", "ckks", "bfv"):
            raise ValueError(f"encryption must be 'none', 'ckks' or 'bfv', got {self.encryption!r}")
        if self.encryption == "bfv" and not self.clip:
            raise ValueError(f"method {self.name!r}: BFV quantises against the clip bound, so it needs clip=True")
        if self.packing and self.encryption != "ckks":
            raise ValueError(f"method {self.name!r}: packing needs encryption='ckks'")
        if self.packing and not self.clip:
            raise ValueError(f"method {self.name!r}: packing quantises against the clip bound, so it needs clip=True")
        if (self.error_feedback or self.adaptive) and not self.sparsify:
            raise ValueError(f"method {self.name!r}: error_feedback/adaptive need sparsify=True")
        if self.noise and not self.clip:
            raise ValueError(f"method {self.name!r}: Gaussian noise without clipping has no sensitivity bound")
        if self.alignment not in (None, "union", "dense", "own"):
            raise ValueError(f"alignment must be None, 'union', 'dense' or 'own', got {self.alignment!r}")
        if self.alignment == "own" and self.encryption != "none":
            raise ValueError(f"method {self.name!r}: alignment 'own' (each client's own index set) cannot be "
                             "summed slot by slot under encryption; use 'union' or 'dense'")

    @property
    def dp(self) -> bool:
        return self.noise or self.record_dp


_MEDHE = MethodSpec("medhe", sparsify=True, error_feedback=True, adaptive=True, clip=True, noise=True,
                    encryption="ckks", packing=True)

METHODS: dict[str, MethodSpec] = {
    "fedavg": MethodSpec("fedavg"),
    "he_only": MethodSpec("he_only", encryption="ckks", alignment="dense"),
    "medhe": _MEDHE,
    "medhe_no_ef": dataclasses.replace(_MEDHE, name="medhe_no_ef", error_feedback=False),
    "medhe_no_adaptive": dataclasses.replace(_MEDHE, name="medhe_no_adaptive", adaptive=False),
    "medhe_no_packing": dataclasses.replace(_MEDHE, name="medhe_no_packing", packing=False),
    "medhe_no_he": dataclasses.replace(_MEDHE, name="medhe_no_he", encryption="none", packing=False),
    "medhe_no_dp": dataclasses.replace(_MEDHE, name="medhe_no_dp", noise=False),
    "medhe_bfv": dataclasses.replace(_MEDHE, name="medhe_bfv", encryption="bfv", packing=False),
    "medhe_bfv_no_dp": dataclasses.replace(_MEDHE, name="medhe_bfv_no_dp", encryption="bfv", packing=False, noise=False),
    "topk": MethodSpec("topk", sparsify=True, error_feedback=True, adaptive=False, alignment="own"),
    # record-level DP-SGD in each client; what follows it (top-k, EF, clipping, CKKS) is post-processing
    "fedavg_dpsgd": MethodSpec("fedavg_dpsgd", record_dp=True),
    "medhe_dpsgd": dataclasses.replace(_MEDHE, name="medhe_dpsgd", noise=False, record_dp=True),
}


def get(name: str) -> MethodSpec:
    """The registered method called ``name``; unknown names list the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {sorted(METHODS)}") from None

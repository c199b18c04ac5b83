"""Record-level DP-SGD inside each client, with Opacus.

Implementation based on Abadi et al., "Deep Learning with Differential Privacy"
(https://arxiv.org/abs/1607.00133), as Opacus implements it (Yousefpour et al.,
https://arxiv.org/abs/2109.12298): Poisson-sampled batches (each record joins a step with
probability q = batch_size / n), per-sample gradients clipped to ``max_grad_norm``,
Gaussian noise of std ``noise_multiplier * max_grad_norm`` on their sum, and Opacus's
accountant (RDP by default) for epsilon at the stated delta.

``freeze_embeddings``: the text models' embedding tables stay fixed during DP-SGD (Opacus's
per-sample gradient of a 30,522 x 384 word embedding is dense per record, which makes a step
tens of seconds on a CPU); they keep their pretrained values, and only the other layers learn.

Each client is its own DP-SGD party with its own accountant: its epsilon covers its own
records over every local step of every round (the global model it starts a round from is a
function of earlier DP outputs and of other clients' data, not of its records beyond what
the accountant already counts). What the client does with its model delta afterwards (top-k,
error feedback, clipping of the update, quantisation, encryption, aggregation) only reads
DP outputs, so it is post-processing: epsilon is Opacus's, no smaller and no larger.

:class:`RecordLevelDP` is the per-client state (noise multiplier, accountant);
:meth:`RecordLevelDP.attach` hands :func:`medhe.model.train_local` the pieces that turn its
loop into DP-SGD (a grad-sample module, a DP optimiser, Poisson batches), so there is one
training loop. Randomness: batch sampling and noise each come from a CPU ``torch.Generator``
of a medhe stream ``(seed, client, round)``; noise is drawn on the CPU and moved to the
model's device, so it is the same on every device. Opacus's ``secure_mode`` is off: the
simulation's RNG is reproducible, not cryptographically secure.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from medhe import rng as rngmod

ACCOUNTANTS = ("rdp", "prv", "gdp")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def steps_per_epoch(*, num_records: int, batch_size: int) -> int:
    """Poisson steps in one epoch: ``int(1 / q)`` with q = batch_size / n (Opacus's sampler length).

    >>> steps_per_epoch(num_records=91, batch_size=16)
    5
    """
    _check(isinstance(num_records, int) and num_records >= 1, f"num_records must be an integer >= 1, got {num_records!r}")
    _check(isinstance(batch_size, int) and batch_size >= 1, f"batch_size must be an integer >= 1, got {batch_size!r}")
    return max(1, int(1 / sample_rate(num_records=num_records, batch_size=batch_size)))


def sample_rate(*, num_records: int, batch_size: int) -> float:
    """q = min(1, batch_size / n): the expected batch is ``batch_size`` records."""
    return min(1.0, batch_size / num_records)


def noise_for_target(*, target_epsilon: float, delta: float, sample_rate: float, steps: int,
                     accountant: str = "rdp") -> float:
    """Opacus's ``get_noise_multiplier``: the noise multiplier whose epsilon after ``steps`` is the target."""
    from opacus.accountants.utils import get_noise_multiplier

    _check(math.isfinite(target_epsilon) and target_epsilon > 0, f"target_epsilon must be > 0, got {target_epsilon!r}")
    _check(0 < delta < 1, f"delta must be in (0, 1), got {delta!r}")
    _check(isinstance(steps, int) and steps >= 1, f"steps must be an integer >= 1, got {steps!r}")
    _check(accountant in ACCOUNTANTS, f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    with warnings.catch_warnings():  # the bisection visits large z, where RDP's best order is its largest
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate,
                                          steps=steps, accountant=accountant, epsilon_tolerance=0.01))


def _make_dp_optimizer_class():
    from opacus.optimizers import DPOptimizer

    class CPUNoiseDPOptimizer(DPOptimizer):
        """Opacus's DPOptimizer with the noise drawn from a CPU generator, then moved to the device.

        The parent's ``add_noise`` runs with multiplier 0 (clipped sum, no noise, its bookkeeping);
        then each parameter's gradient gets N(0, (z C)^2) drawn on the CPU, so a run draws the
        same noise on every device.
        """

        def add_noise(self) -> None:
            z = self.noise_multiplier
            self.noise_multiplier = 0.0
            try:
                super().add_noise()
            finally:
                self.noise_multiplier = z
            std = z * self.max_grad_norm
            if std == 0:
                return
            for p in self.params:
                noise = torch.normal(0.0, std, size=tuple(p.grad.shape), generator=self.generator,
                                     dtype=torch.float32)
                p.grad.add_(noise.to(device=p.grad.device, dtype=p.grad.dtype))

    return CPUNoiseDPOptimizer


@dataclass
class Attached:
    """What :func:`medhe.model.train_local` runs with: forward module, optimiser, batches per epoch."""

    net: Callable[..., Any]  # the grad-sample module's forward
    optimizer: Any
    batches: Callable[[], Iterator[torch.Tensor]]
    detach: Callable[[], None]

    @staticmethod
    @contextlib.contextmanager
    def quiet() -> Iterator[None]:
        """Silence torch's notice that Opacus's backward hooks fire on outputs (inputs need no grad)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            yield


class RecordLevelDP:
    """One client's record-level DP-SGD: its noise multiplier and its Opacus accountant.

    Exactly one of ``target_epsilon`` (the noise multiplier is solved so that epsilon after
    ``rounds * epochs * steps_per_epoch`` steps is the target) and ``noise_multiplier`` is given.
    """

    def __init__(self, *, num_records: int, batch_size: int, epochs: int, rounds: int, max_grad_norm: float,
                 delta: float, target_epsilon: float | None = None, noise_multiplier: float | None = None,
                 accountant: str = "rdp", freeze_embeddings: bool = False) -> None:
        from opacus.accountants import create_accountant

        _check((target_epsilon is None) != (noise_multiplier is None),
               f"give exactly one of target_epsilon and noise_multiplier, got {target_epsilon!r} and {noise_multiplier!r}")
        _check(math.isfinite(max_grad_norm) and max_grad_norm > 0, f"max_grad_norm must be > 0, got {max_grad_norm!r}")
        _check(isinstance(rounds, int) and rounds >= 1 and isinstance(epochs, int) and epochs >= 1,
               f"rounds and epochs must be integers >= 1, got {rounds!r} and {epochs!r}")
        _check(accountant in ACCOUNTANTS, f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
        self.num_records = num_records
        self.batch_size = batch_size
        self.sample_rate = sample_rate(num_records=num_records, batch_size=batch_size)
        self.steps_per_epoch = steps_per_epoch(num_records=num_records, batch_size=batch_size)
        self.planned_steps = rounds * epochs * self.steps_per_epoch
        self.max_grad_norm = float(max_grad_norm)
        self.delta = float(delta)
        self.target_epsilon = target_epsilon
        self.accountant_name = accountant
        self.freeze_embeddings = bool(freeze_embeddings)
        if noise_multiplier is None:
            noise_multiplier = noise_for_target(target_epsilon=float(target_epsilon), delta=self.delta,
                                                sample_rate=self.sample_rate, steps=self.planned_steps,
                                                accountant=accountant)
        _check(math.isfinite(noise_multiplier) and noise_multiplier >= 0,
               f"noise_multiplier must be finite and >= 0, got {noise_multiplier!r}")
        self.noise_multiplier = float(noise_multiplier)
        self.accountant = create_accountant(mechanism=accountant)

    @property
    def steps(self) -> int:
        """DP-SGD steps taken so far (each one counted by the accountant)."""
        return int(sum(entry[-1] for entry in self.accountant.history))

    def epsilon(self) -> float:
        """Epsilon spent so far at ``delta`` (0 before the first step; inf without noise)."""
        if self.steps == 0:
            return 0.0
        if self.noise_multiplier == 0:
            return math.inf
        return float(self.accountant.get_epsilon(delta=self.delta))

    def attach(self, module: Any, optimizer: Any, *, seed: int, client: int, round_: int) -> Attached:
        """Wrap ``module`` (Opacus grad samples) and ``optimizer`` (clip + noise + accountant step) for a round."""
        from opacus import GradSampleModule
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler
        from opacus.validators import ModuleValidator

        module.train()
        frozen = _embedding_parameters(module) if self.freeze_embeddings else []
        for p in frozen:  # for this round only: the flat layout (requires_grad at get_flat time) is unchanged
            p.requires_grad_(False)
        errors = ModuleValidator.validate(module, strict=False)
        if errors:
            raise ValueError(f"Opacus cannot train this model with DP-SGD: {errors}")
        net = GradSampleModule(module, loss_reduction="mean")
        dp_opt = _make_dp_optimizer_class()(
            optimizer, noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
            expected_batch_size=self.batch_size, loss_reduction="mean",
            generator=rngmod.torch_generator(seed, "dp-sgd-noise", client, round_))
        dp_opt.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        sampler = UniformWithReplacementSampler(num_samples=self.num_records, sample_rate=self.sample_rate,
                                                generator=rngmod.torch_generator(seed, "dp-sgd-sampling", client, round_),
                                                steps=self.steps_per_epoch)

        takes_positions = "position_ids" in inspect.signature(module.forward).parameters

        def forward(*args: Any, **batch: Any) -> Any:
            # BERT-style models index their position embeddings with a (1, L) tensor shared by the
            # batch, so Opacus would see one "sample" there; per-row position ids give it B (same values)
            if takes_positions and "input_ids" in batch:
                ids = batch["input_ids"]
                batch["position_ids"] = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
            return net(*args, **batch)

        def batches() -> Iterator[torch.Tensor]:
            for idx in sampler:
                yield torch.as_tensor(idx, dtype=torch.long)

        def detach() -> None:
            net.remove_hooks()
            for p in module.parameters():
                p.grad_sample = None
                p.grad = None
            for p in frozen:
                p.requires_grad_(True)

        return Attached(net=forward, optimizer=dp_opt, batches=batches, detach=detach)

    def statement(self) -> dict[str, Any]:
        """What this client's guarantee is, for the run record."""
        return {
            "level": "record", "mechanism": "DP-SGD (Opacus): Poisson sampling, per-sample clipping, Gaussian noise",
            "accountant": f"opacus {self.accountant_name}", "delta": self.delta, "epsilon": self.epsilon(),
            "target_epsilon": self.target_epsilon, "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm, "sample_rate": self.sample_rate, "steps": self.steps,
            "planned_steps": self.planned_steps, "num_records": self.num_records, "secure_rng": False,
            "frozen_embeddings": self.freeze_embeddings,
            "post_processing": "top-k, error feedback, update clipping, quantisation, encryption and "
                               "aggregation act on the DP-SGD output: epsilon is Opacus's",
        }


def _embedding_parameters(module: Any) -> list[Any]:
    """Trainable parameters of the module's ``nn.Embedding`` layers (none in the tabular MLP)."""
    return [p for m in module.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters() if p.requires_grad]


def empty_step(net: Any, optimizer: Any, module: Any) -> None:
    """A step on an empty Poisson batch: zero clipped sum, noise only, counted by the accountant.

    Skipping it would reveal that no record was sampled; Opacus's own loader does the same.
    """
    optimizer.zero_grad(set_to_none=True)
    for p in module.parameters():
        if p.requires_grad:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.step()

"""Federated simulation: methods (compositions), transports, and the training loop.

The training loop (:mod:`medhe.fl.simulate`) is imported on first use (PEP 562), so that code which
needs only the method registry or a transport (e.g. a Flower ClientApp process, started afresh for
every message) does not pay for torch, scikit-learn and the data loaders.
"""

from medhe.fl.methods import METHODS, MethodSpec

__all__ = ["METHODS", "MethodSpec", "RunResult", "run", "write"]


def __getattr__(name: str):
    if name in ("RunResult", "run", "write"):
        from medhe.fl import simulate

        return getattr(simulate, name)
    raise AttributeError(f"module 'medhe.fl' has no attribute {name!r}")

"""Federated simulation: methods (compositions), transports, and the training loop.

``run`` trains on the engine ``pipeline.engine`` names (:func:`medhe.flower.engine.run`: the in-process
loop, or Flower's simulation engine). The training loop (:mod:`medhe.fl.simulate`) is imported on first use (PEP 562), so that code which
needs only the method registry or a transport (e.g. a Flower ClientApp process, started afresh for
every message) does not pay for torch, scikit-learn and the data loaders.
"""

from medhe.fl.methods import METHODS, MethodSpec

__all__ = ["METHODS", "MethodSpec", "RunResult", "run", "write"]


def __getattr__(name: str):
    if name == "run":  # the engine params select (pipeline.engine): medhe.flower.engine.run
        from medhe.flower.engine import run

        return run
    if name in ("RunResult", "write"):
        from medhe.fl import simulate

        return getattr(simulate, name)
    raise AttributeError(f"module 'medhe.fl' has no attribute {name!r}")

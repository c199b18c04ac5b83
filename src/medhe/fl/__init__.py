"""Federated simulation: methods (compositions), transports, and the training loop."""

from medhe.fl.methods import METHODS, MethodSpec
from medhe.fl.simulate import RunResult, run, write

__all__ = ["METHODS", "MethodSpec", "RunResult", "run", "write"]

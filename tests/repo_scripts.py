"""Import the repository's scripts (``tools/``, ``benchmarks/``) as modules, for their tests.

The scripts are run by path (``python tools/x.py``), not installed, so their tests load them by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load(relpath: str) -> ModuleType:
    """The module of the script at ``relpath`` (from the repository root), loaded as ``python relpath``
    runs it: its folder is on ``sys.path`` (for the modules beside it), and it is registered in
    ``sys.modules`` under its file name (so that dataclasses and pickling resolve it)."""
    path = ROOT / relpath
    if not path.is_file():
        raise FileNotFoundError(f"no script {relpath!r} under the repository root {ROOT}")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

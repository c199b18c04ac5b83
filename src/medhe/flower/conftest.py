"""pytest --doctest-modules imports every module here; without Flower installed, skip them all."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("flwr") else ["*.py"]

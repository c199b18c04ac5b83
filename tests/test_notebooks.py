"""Source notebooks are clean, thin and parameterised."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import repo_scripts

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_thin_and_parameterised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "commit notebooks without outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0], "the first code cell must be the only 'parameters' cell"
    for cell in code[1:]:
        src = "".join(cell["source"])
        assert "def " not in src and "class " not in src, "logic belongs in src/medhe, not in notebooks"
    assert "params_file" in "".join(tagged[0]["source"])


def test_notebooks_match_their_generator():
    mod = repo_scripts.load("tools/make_notebooks.py")
    assert {p.stem for p in NOTEBOOKS} == set(mod.NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(path):
    """papermill must parse every name of the parameters cell (a trailing comment can hide one)."""
    import ast

    import papermill

    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    assigned = {t.id for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert set(papermill.inspect_notebook(str(path))) == assigned


def _register_kernel_tool():
    return repo_scripts.load("tools/register_kernel.py")


def test_notebooks_name_the_kernel_make_setup_registers_inside_the_environment(tmp_path):
    tool = _register_kernel_tool()
    assert {json.loads(p.read_text())["metadata"]["kernelspec"]["name"] for p in NOTEBOOKS} == {tool.NAME}
    spec_file = tool.register(prefix=str(tmp_path))
    assert spec_file == tmp_path / "share" / "jupyter" / "kernels" / tool.NAME / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["display_name"] == tool.DISPLAY_NAME and spec["argv"][-1] == "--IPKernelApp.log_level=CRITICAL"
    make = (ROOT / "Makefile").read_text()
    assert "tools/register_kernel.py" in make and "--user" not in make  # nothing written to the user's home


def _exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """The Gaussian mechanism's exact epsilon at ``delta`` (Balle and Wang 2018, Theorem 8), mu = sensitivity /
    noise: delta(eps) = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu), solved for eps."""
    from scipy.optimize import brentq
    from scipy.special import log_ndtr, ndtr
    import math

    def gap(eps: float) -> float:
        return ndtr(mu / 2 - eps / mu) - math.exp(eps + log_ndtr(-mu / 2 - eps / mu)) - delta

    return brentq(gap, 0.0, 10 * mu * mu + 10)


@pytest.mark.slow
def test_privacy_notebook_runs_from_notebooks_folder_with_the_project_kernel(tmp_path, monkeypatch):
    """As a user opening notebooks/40_privacy.ipynb in Jupyter: the kernel is the project's ("medhe",
    installed by `make setup`) and the working directory is notebooks/, not the root papermill uses.
    The notebook must find params.yaml above it and write the epsilon table where the pipeline reads it;
    the table's PLD epsilon for q = 1 is the Gaussian mechanism's exact epsilon with mu = sqrt(T) / z."""
    import shutil

    import nbformat
    import pandas as pd
    import yaml
    from jupyter_client.kernelspec import find_kernel_specs
    from nbclient import NotebookClient

    if "medhe" not in find_kernel_specs():
        pytest.skip("the project kernel 'medhe' is not installed: run `make setup`")
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    # the smoke profile with noise multiplier 1 (PLD accounting at smoke's z = 0.12, epsilon ~ 165, takes ~40 s)
    profile = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    profile["dp"]["noise_multiplier"] = 1.0
    (repo / "params.yaml").write_text(yaml.safe_dump(profile))
    shutil.copy2(ROOT / "notebooks" / "40_privacy.ipynb", repo / "notebooks" / "40_privacy.ipynb")
    # the kernel imports this checkout's medhe (the venv's editable install may point at another one)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(repo / "notebooks" / "40_privacy.ipynb", as_version=4)
    NotebookClient(nb, kernel_name="medhe", timeout=300,
                   resources={"metadata": {"path": str(repo / "notebooks")}}).execute()
    eps = pd.read_csv(repo / "results" / "smoke" / "privacy" / "epsilon.csv")
    assert not (repo / "notebooks" / "results").exists()  # written at the project root, not beside the notebook
    assert (repo / "results" / "smoke" / "privacy" / "statement.json").is_file()
    assert 1.0 in set(eps["noise_multiplier"])  # the profile's z, and the z that reaches epsilon = 1
    for z, curve in eps.groupby("noise_multiplier"):
        curve = curve.sort_values("round")
        assert curve["round"].tolist() == [1, 2, 3]  # max(train.rounds = 2, convergence_rounds = 3)
        assert curve["epsilon_pld"].is_monotonic_increasing and (curve["epsilon_rdp"] >= curve["epsilon_pld"]).all()
        for row in curve.itertuples():
            exact = _exact_gaussian_epsilon((row.round ** 0.5) / z, row.delta)
            assert row.epsilon_pld == pytest.approx(exact, rel=0.02), (z, row.round)

"""Source notebooks are clean, thin and parameterised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "tools" / "make_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
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
    import importlib.util

    spec = importlib.util.spec_from_file_location("register_kernel", ROOT / "tools" / "register_kernel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_notebooks_name_the_kernel_make_setup_registers_inside_the_environment(tmp_path):
    tool = _register_kernel_tool()
    assert {json.loads(p.read_text())["metadata"]["kernelspec"]["name"] for p in NOTEBOOKS} == {tool.NAME}
    spec_file = tool.register(prefix=str(tmp_path))
    assert spec_file == tmp_path / "share" / "jupyter" / "kernels" / tool.NAME / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["display_name"] == tool.DISPLAY_NAME and spec["argv"][-1] == "--IPKernelApp.log_level=CRITICAL"
    make = (ROOT / "Makefile").read_text()
    assert "tools/register_kernel.py" in make and "--user" not in make  # nothing written to the user's home

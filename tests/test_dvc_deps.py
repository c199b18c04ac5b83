"""dvc.yaml's stages depend on every medhe module their code imports, so that changing one reruns them:
training stages on what a run imports at run time (and nothing else, so that a report change does not
rerun training), every stage on what its code can import, read statically."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# a run of every transport and of the membership-inference attacks (LiRA shadows included), in a fresh
# interpreter so that only what a training stage imports is in sys.modules
SCRIPT = """
import json, sys
from medhe import attacks, fl, params, records, results
P = params.load_dict({"data": {"dataset": "breast_cancer", "num_clients": 3}, "model": {"name": "mlp", "hidden": 8},
                      "train": {"rounds": 1, "local_epochs": 1, "batch_size": 32, "lr": 1e-2},
                      "dp": {"noise_multiplier": 1.0},
                      "ckks": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [60, 40, 40, 60]}})
for method in ("medhe", "medhe_bfv", "topk", "he_only", "medhe_no_he"):
    fl.run(P, method=method, seed=0, progress=False)
attacks.evaluate_run(P, method="fedavg", seed=0, config=attacks.MIAConfig(n_shadows=2, n_bootstrap=10))
print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items())
                        if (n == "medhe" or n.startswith("medhe.")) and getattr(m, "__file__", None))))
"""

# imported by the notebook only to name output folders, which dvc.yaml fixes itself (see its comment)
NOT_A_TRAINING_DEP = {"src/medhe/results.py"}


def test_training_stages_depend_on_every_module_a_run_imports() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    imported = {Path(f).resolve().relative_to(ROOT).as_posix() for f in json.loads(run.stdout.splitlines()[-1])}
    assert "src/medhe/fl/ckks_transport.py" in imported and "src/medhe/attacks/lira.py" in imported
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train", "sweep", "convergence", "noniid", "scale", "papersize", "frontier", "lira"):
        deps = [d for d in stages[name]["deps"] if d.startswith("src/")]
        covered = {f for f in imported if any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)}
        assert imported - covered - NOT_A_TRAINING_DEP == set(), name
        assert not any(d in ("src/medhe/report.py", "src/medhe/claims.py", "src/medhe/plots.py") for d in deps), name


# ---------------------------------------------------------------- every stage, statically

def _module_file(module: str) -> Path | None:
    path = ROOT.joinpath("src", *module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(tree: ast.AST, package: str) -> set[str]:
    """Every module an ``import`` anywhere in ``tree`` (functions included) names, absolute."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def medhe_closure(entries: list[tuple[ast.AST, str]]) -> set[str]:
    """Files of every medhe module the code can import: transitively, package ``__init__``s included
    (Python runs them), and imports inside functions counted (a stage may call them)."""
    todo = [m for tree, package in entries for m in _imported_modules(tree, package)]
    seen: set[Path] = set()
    while todo:
        parts = todo.pop().split(".")
        if parts[0] != "medhe":
            continue
        for i in range(1, len(parts) + 1):
            module = ".".join(parts[:i])
            path = _module_file(module)
            if path is None or path in seen:
                continue
            seen.add(path)
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            todo += _imported_modules(ast.parse(path.read_text()), package)
    return {p.relative_to(ROOT).as_posix() for p in seen}


def stage_entries(cmd: str) -> tuple[list[str], list[tuple[ast.AST, str]]]:
    """(files the command runs, their parsed code): a papermill notebook's code cells, ``python -m``
    modules, and ``python script.py`` scripts with the scripts beside them that they import."""
    files, trees = [], []
    for notebook in re.findall(r"\$\{nb\}.*?(notebooks/[\w.]+\.ipynb)", cmd):
        cells = json.loads((ROOT / notebook).read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
        files.append(notebook)
        trees.append((ast.parse(code), ""))
    for module in re.findall(r"python -m (medhe[\w.]*)", cmd):
        path = _module_file(module)
        files.append(path.relative_to(ROOT).as_posix())
        trees.append((ast.parse(path.read_text()), module.rpartition(".")[0]))
    for script in re.findall(r"python ([\w/]+\.py)", cmd):
        tree = ast.parse((ROOT / script).read_text())
        files.append(script)
        trees.append((tree, ""))
        for name in _imported_modules(tree, ""):
            beside = (ROOT / script).parent / f"{name}.py"
            if beside.is_file():
                files.append(beside.relative_to(ROOT).as_posix())
                trees.append((ast.parse(beside.read_text()), ""))
    assert files, f"no notebook, module or script found in {cmd!r}"
    return files, trees


def test_closure_follows_package_inits_and_imports_inside_functions() -> None:
    files = medhe_closure([(ast.parse("from medhe import report"), "")])
    assert {"src/medhe/__init__.py", "src/medhe/report.py", "src/medhe/targets.py"} <= files
    # report imports medhe.attacks.data inside a function: Python runs medhe/attacks/__init__.py,
    # which imports the attacks' evaluation and through it the federated simulation
    assert {"src/medhe/attacks/__init__.py", "src/medhe/fl/simulate.py"} <= files
    assert "src/medhe/plots.py" not in files


def test_every_stage_depends_on_every_medhe_module_its_code_can_import() -> None:
    """A stage whose code imports a module it does not list as a dependency keeps a stale result when
    that module changes (``dvc repro`` does not rerun it): e.g. ``comm`` builds the to-target table
    with ``medhe.targets`` through ``medhe.report``."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        cmd = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
        files, trees = stage_entries(cmd)
        deps = [d for d in stage.get("deps", []) if not d.startswith("results/")]
        training = {"notebooks/20_train.ipynb", "notebooks/25_target.ipynb"} & set(files)
        needed = (medhe_closure(trees) | set(files)) - (NOT_A_TRAINING_DEP if training else set())
        lost = sorted(f for f in needed if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
        if lost:
            missing[name] = lost
    assert missing == {}


def test_bytecode_caches_are_not_part_of_a_code_dependency() -> None:
    # a directory dependency (src/medhe/fl) is hashed file by file: a __pycache__ written by an import
    # must not change it, or every stage depending on the directory reruns after `make test`
    from dvc.repo import Repo

    ignore = Repo(str(ROOT)).dvcignore
    for folder in ("src/medhe/fl", "src/medhe/flower", "src/medhe/ckks"):
        assert ignore.is_ignored_dir(str(ROOT / folder / "__pycache__")), folder
        assert ignore.is_ignored_file(str(ROOT / folder / "engine.cpython-311.pyc")), folder
        assert not ignore.is_ignored_file(str(ROOT / folder / "__init__.py")), folder


def test_report_stage_depends_on_every_results_group_whose_run_records_it_reads() -> None:
    # the report's wall-time table sums run.json of every group in medhe.results.GROUPS; a group missing
    # from the stage's deps leaves a committed REPORT.md stale when only that group reruns
    from medhe import results

    deps = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]["deps"])
    missing = [g for g in results.GROUPS if f"results/${{profile}}/{g}" not in deps]
    assert not missing, f"report stage lacks deps on results groups {missing}"

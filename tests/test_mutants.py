"""The mutation check (tools/mutants.py) stays applicable: each mutant still finds its line in the code."""
from __future__ import annotations

from pathlib import Path

import pytest

import repo_scripts

ROOT = Path(__file__).resolve().parents[1]
mutants = repo_scripts.load("tools/mutants.py")


@pytest.mark.parametrize("m", mutants.MUTANTS, ids=lambda m: m.name)
def test_each_mutant_changes_exactly_one_place_of_existing_code(m):
    text = (ROOT / m.path).read_text()
    assert text.count(m.old) == 1, f"{m.name}: update the mutant to the code of {m.path}"
    assert m.new != m.old
    for arg in m.tests:
        if arg.startswith("tests/"):
            assert (ROOT / arg.split("::")[0]).is_file(), f"{m.name}: no test file {arg}"


def test_mutant_names_are_unique_and_the_cli_refuses_an_unknown_one(capsys):
    names = [m.name for m in mutants.MUTANTS]
    assert len(names) == len(set(names))
    with pytest.raises(SystemExit):
        mutants.main(["--only", "no-such-mutant"])
    assert "unknown mutant(s) ['no-such-mutant']" in capsys.readouterr().err

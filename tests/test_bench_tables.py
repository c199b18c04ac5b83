"""The benchmarks' shared output helpers (benchmarks/bench_tables.py)."""

import csv

import repo_scripts

bench_tables = repo_scripts.load("benchmarks/bench_tables.py")


def test_markdown_formats_numbers_and_leaves_missing_cells_empty():
    rows = [{"a": 1234567, "b": 0.012345, "c": float("nan")}, {"a": True, "b": 12345.6}]
    assert bench_tables.markdown(rows, ["a", "b", "c"]).splitlines() == [
        "| a | b | c |", "|---|---|---|", "| 1,234,567 | 0.0123 | nan |", "| True | 12,346 |  |"]


def test_write_csv_fills_missing_cells_and_drops_other_keys(tmp_path):
    out = tmp_path / "sub" / "t.csv"
    bench_tables.write_csv(out, [{"a": 1, "zzz": 9}, {"b": 2.5}], ["a", "b"])
    with out.open() as f:
        assert list(csv.reader(f)) == [["a", "b"], ["1", ""], ["", "2.5"]]

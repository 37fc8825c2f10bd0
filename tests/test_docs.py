"""The documents a newcomer reads hold: the README fits its size, every local link opens, and
every test a promise names exists (a renamed test would otherwise leave a promise unheld)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_fits_a_newcomer():
    assert len((ROOT / "README.md").read_bytes()) <= 15 * 1024


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_local_link_opens(doc):
    links = re.findall(r"\]\(([^)\s]+)\)", doc.read_text())
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link)]
    missing = [link for link in local if link and not (doc.parent / link).exists()]
    assert not missing, f"{doc.name}: {missing}"


def _functions(module: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(module.read_text())) if isinstance(n, ast.FunctionDef)}


def test_every_test_a_promise_names_exists():
    text = (ROOT / "docs" / "guarantees.md").read_text()
    named = re.findall(r"`(test_\w+)(?:::(test_\w+))?`", text)
    assert len(named) >= 10
    for module, function in named:
        path = ROOT / "tests" / f"{module}.py"
        assert path.exists(), module
        assert not function or function in _functions(path), f"{module}::{function}"


def test_the_readmes_results_are_rows_of_the_committed_report():
    """The README quotes the report, never numbers of its own: each line of its results table is
    a line of reports/report.md (after a new run, copy the rows again)."""
    readme = (ROOT / "README.md").read_text().split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in readme.splitlines() if line.startswith("|")]
    report = set((ROOT / "reports" / "report.md").read_text().splitlines())
    assert len(rows) >= 4
    assert [r for r in rows if r not in report] == []

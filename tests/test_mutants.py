"""The mutation check's list still fits the source: every mutant's original text occurs exactly once in its
file, the mutated file compiles, and its covering tests exist. (The check itself is run by hand, like the
benchmarks: `python bench/mutants.py`.) Without this, a refactoring would silently turn mutants into no-ops."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.support.records import REPO


@pytest.fixture(scope="module")
def mutants():
    spec = importlib.util.spec_from_file_location("bench_mutants", REPO / "bench" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_every_mutant_still_applies_to_the_current_source(mutants):
    assert mutants.problems() == []
    assert 40 <= len(mutants.MUTANTS) <= 70


@pytest.mark.parametrize("original", ["x = 1", "y = 2"])
def test_an_original_found_twice_or_not_at_all_is_refused(mutants, tmp_path, original):
    (tmp_path / "detection").mkdir()
    (tmp_path / "detection" / "rule.py").write_text("x = 1\nx = 1\n")
    mutant = mutants.Mutant("m", "detection/rule.py", original, "x = 3", "breaks x")
    with pytest.raises(ValueError, match="not once"):
        mutants.mutated(mutant, tmp_path)

"""Pass@K closed forms: symbolic batch sums, and equality with the reference and the package."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

import maxpo
from maxpo import reference
from maxpo.theory import passk_closed_forms as passk


@pytest.mark.parametrize("name,residual", list(passk.symbolic_identities().items()))
def test_symbolic_sums(name: str, residual) -> None:
    assert passk.simplify_residual(residual) == 0, name


@pytest.mark.parametrize("b", range(2, 7))
def test_closed_forms_equal_reference_and_package(b: int) -> None:
    batches = torch.tensor([[1.0] * c + [0.0] * (b - c) for c in range(b + 1)], dtype=torch.float64)
    for k in range(1, b + 1):
        for name in maxpo.METHODS:
            if maxpo.METHODS[name].check(b, k) is not None:
                continue
            got = maxpo.advantages(batches, k, name)
            for c in range(b + 1):
                cor, wrong = passk.evaluate(name, b, k, c)
                closed = [cor] * c + [wrong] * (b - c)
                ref = reference.advantages(batches[c].tolist(), k, name)
                if all(isinstance(v, Fraction) for v in closed + ref):
                    assert closed == ref, (name, b, k, c)
                assert max(abs(float(u) - g) for u, g in zip(closed, got[c].tolist())) < 1e-12


def test_compact_forms_reduce_to_full_forms() -> None:
    full, compact = passk.closed_forms(), passk.closed_forms(compact=True)
    for name in ("maxpo", "pkpo_loo", "chen_passk"):
        for f, cpt in zip(full[name], compact[name]):
            assert passk.simplify_residual(f - cpt.subs(passk.parts())) == 0


def test_empty_classes_are_none() -> None:
    assert passk.evaluate("maxpo", 5, 2, 0)[0] is None
    assert passk.evaluate("maxpo", 5, 2, 5)[1] is None
    assert passk.evaluate("pkpo_loo1", 5, 2, 2)[1] == 0

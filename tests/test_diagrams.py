"""The conceptual diagrams: well-formed SVG that scales, and the numbers they draw are right."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from fractions import Fraction

import pytest

from maxpo import reference
from maxpo.figures import diagrams
from maxpo.theory.zero_signal import zero_signal_ties

NS = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg" and root.get("viewBox") and "width:100%" in root.get("style", "")
    assert root.find(f"{NS}title") is not None
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


def test_pipeline_names_every_stage_and_typesets_subscripts() -> None:
    svg = diagrams.pipeline()
    texts = _texts(svg)
    # itertext() drops the sub/superscript markup: "s_i" reads "si"
    assert {"prompt x", "B samples", "rewards", "sort", "si and bi", "advantage", "loss"} <= set(texts)
    assert "y_B" not in svg and 'baseline-shift="sub"' in svg


def test_k_subsets_draws_every_subset_and_the_mean_of_maxima() -> None:
    r = ["1/10", "4/10", "7/10", "9/10"]
    texts = _texts(diagrams.k_subsets(r, 2))
    assert sum(t.startswith("max ") for t in texts) == math.comb(4, 2)
    rho = reference.maxk_ustat([Fraction(v) for v in r], 2)
    assert any(t.endswith(f"= {rho.numerator}/{rho.denominator}") for t in texts), texts


def test_q_value_matches_the_oracle() -> None:
    r = ["1/10", "3/10", "1/2", "7/10", "9/10"]
    texts = _texts(diagrams.q_value(r, 3, 1))
    assert sum(t.startswith("max ") for t in texts) == math.comb(4, 2)
    q = reference.q_values([Fraction(v) for v in r], 3)[1]
    assert any(t.startswith("Q2 = ") and t.endswith(f"= {q.numerator}/{q.denominator}") for t in texts), texts


@pytest.mark.parametrize("b,k", [(8, 3), (5, 1), (6, 5)])
def test_zone_threshold_is_the_package_rule(b: int, k: int) -> None:
    texts = _texts(diagrams.zero_signal_zone(b, k))
    assert f"B − K + 1 = {zero_signal_ties('maxpo', b, k)}" in texts


def test_mixture_weights_are_harmonic() -> None:
    texts = _texts(diagrams.mixture_weights(6))
    assert [t for t in texts if "/" in t and len(t) <= 4] == ["1/2", "1/3", "1/4", "1/5"]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="1 <= K <= B"):
        diagrams.k_subsets([0, 1], 3)
    with pytest.raises(ValueError, match="outside"):
        diagrams.q_value([0, 1, 2], 2, 5)
    with pytest.raises(ValueError, match="K <= B-1"):
        diagrams.zero_signal_zone(4, 4)
    with pytest.raises(ValueError, match="do not fit"):
        diagrams.k_subsets(list(range(8)), 4)

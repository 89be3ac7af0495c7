"""Drive the ipywidgets explorers from Python and check that their output follows the controls."""
from __future__ import annotations

import pytest

from maxpo import widgets


def test_parse_numbers() -> None:
    assert widgets.parse_numbers("0.1, 1/2 3") == [0.1, 0.5, 3.0]
    with pytest.raises(ValueError, match="not a number"):
        widgets.parse_numbers("0.1, x")
    with pytest.raises(ValueError):
        widgets.parse_numbers("  ")


def test_advantage_explorer_follows_controls() -> None:
    e = widgets.AdvantageExplorer("0.1, 0.3, 0.5, 0.7, 0.9", k=2, method="maxpo")
    expected = [-1 / 15, -1 / 15, -1 / 30, 1 / 30, 2 / 15]
    assert e.result["advantages"] == pytest.approx(expected, abs=1e-12)
    assert e.result["sum"] == pytest.approx(0, abs=1e-12)
    assert "centred" in e.output.value and "not centred" not in e.output.value
    html_before = e.output.value

    e.method.value = "pkpo_loo1"
    assert e.result["advantages"] == pytest.approx([0, 0.02, 0.06, 0.12, 0.20], abs=1e-12)
    assert e.result["sum"] == pytest.approx(0.4)
    assert "not centred" in e.output.value and e.output.value != html_before

    e.method.value = "maxpo"
    e.rewards.value = "1 0 0 1 0 0 0 0"
    assert e.k.max == 8
    e.k.value = 4
    assert e.result["advantages"][0] == pytest.approx(3 / 14)
    assert e.result["advantages"][1] == pytest.approx(-1 / 14)
    assert e.result["variance"] > 0


def test_advantage_explorer_shows_errors() -> None:
    e = widgets.AdvantageExplorer("0, 1, 2", k=3, method="pkpo_loo1")
    assert e.error is None
    e.method.value = "maxpo"                # K = B is refused, with the package's message
    assert e.result is None and "k <= B - 1" in e.error
    assert "Cannot compute" in e.output.value
    e.k.value = 2
    assert e.error is None and e.result["sum"] == pytest.approx(0, abs=1e-12)
    e.rewards.value = "0, one"
    assert "not a number" in e.error


def test_advantage_explorer_clamps_k_when_batch_shrinks() -> None:
    e = widgets.AdvantageExplorer("0, 1, 2, 3, 4", k=4, method="pkpo_s")
    e.rewards.value = "0, 1"
    assert e.k.value <= 2 and e.result is not None and len(e.result["advantages"]) == 2


def test_variance_explorer() -> None:
    v = widgets.VarianceExplorer(rewards="0, 0.5, 1", probs="1/2, 1/3, 1/6", b=4, k=2)
    assert set(v.result) == set(widgets.MAXK_METHODS)
    for name, row in v.result.items():
        assert row["bias"] < 1e-12, name
        assert row["offset_spread"] < 1e-12, name
    assert v.result["maxpo"]["mean_abs_sum"] < 1e-12
    assert v.result["pkpo_s"]["offset"] > 0
    before = v.result["maxpo"]["variance"]
    v.k.value = 3
    assert v.result["maxpo"]["variance"] != before
    v.k.value = 4                            # K = B: maxpo undefined, pkpo_s and loo-1 remain
    assert "maxpo" not in v.result and "pkpo_loo1" in v.result
    assert "not defined" in v.output.value
    v.probs.value = "1/2, 1/2, 1/2"
    assert "sum to 1" in v.error
    v.probs.value = "1/2, 1/2"
    assert "one per action" in v.error


def test_precision_explorer() -> None:
    p = widgets.PrecisionExplorer(log2_b=6, k_fraction=0.25, offset=1000.0)
    assert p.b == 64 and p.k_value == 16
    assert p.result["package"]["relative_error"] < 1e-6
    noshift = p.result["float32, no shift"]["relative_error"]
    p.offset.value = 0.001
    assert p.result["float32, no shift"]["relative_error"] < noshift
    p.k_fraction.value = 0.0
    assert p.k_value == 1 and "K = 1" in p.output.value

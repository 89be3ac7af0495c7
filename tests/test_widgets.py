"""Drive the ipywidgets explorers from Python: their numbers, their figures, their in-place errors.

Expected values come from oracles that share no code with the explorers:
hand-computed fractions, ``math.comb`` binomials, brute force over subsets
(:func:`maxpo.reference.maxk_ustat`) and enumeration of K-tuples with
fractions (:func:`maxpo.reference.maxk_objective_gradient`). Update times are
printed (run with ``-s``), never asserted.
"""
from __future__ import annotations

import math
from fractions import Fraction

import pytest

from maxpo import explorers as widgets
from maxpo import reference
from maxpo.explorers import figures
from maxpo.explorers.base import Explorer

PLOTLY_JSON = "application/vnd.plotly.v1+json"


def drawn(explorer: Explorer) -> dict:
    """The plotly figure the explorer's Output widget currently holds (its JSON MIME entry)."""
    assert len(explorer.plot.outputs) == 1, explorer.plot.outputs
    out = explorer.plot.outputs[0]
    assert out["output_type"] == "display_data"
    return out["data"][PLOTLY_JSON]


def shows_error(explorer: Explorer, fragment: str) -> None:
    """The explorer refused the input in place: message shown, stale figure cleared, no result."""
    assert explorer.error is not None and fragment in explorer.error, explorer.error
    assert explorer.result is None and explorer.figure is None
    assert "Cannot compute" in explorer.message.value and "Traceback" not in explorer.message.value
    assert explorer.plot.outputs == ()


def report_time(name: str, explorer: Explorer) -> None:
    print(f"\n{name}: last update {1000 * explorer.update_seconds:.1f} ms")


def test_parse_numbers() -> None:
    assert widgets.parse_numbers("0.1, 1/2 3") == [0.1, 0.5, 3.0]
    assert widgets.parse_fractions("1/3 0.1") == [Fraction(1, 3), Fraction(1, 10)]
    with pytest.raises(ValueError, match=r"reward 2, 'x', is not a number"):
        widgets.parse_numbers("0.1, x", "reward")
    with pytest.raises(ValueError, match="at least one"):
        widgets.parse_numbers("  ")
    with pytest.raises(ValueError, match="not a number"):
        widgets.parse_numbers("1/0")


# --------------------------------------------------------------------------- objective
def test_estimate_explorer_weights_and_estimates() -> None:
    rewards = "0.2, 0.9, 0.4, 0.4, 0.1, 0.7, 0.3, 0.6"
    e = widgets.EstimateExplorer(rewards, k=3)
    exact = [Fraction(t) for t in rewards.split(", ")]
    b = len(exact)
    assert e.result["weights"] == pytest.approx([math.comb(i - 1, 2) / math.comb(b, 3) for i in range(1, b + 1)])
    assert e.result["by_k"] == pytest.approx([float(reference.maxk_ustat(exact, k)) for k in range(1, b + 1)])
    assert e.result["estimate"] == pytest.approx(float(reference.maxk_ustat(exact, 3)))
    fig = drawn(e)
    assert fig["data"][0]["y"] == pytest.approx(e.result["weights"])      # the bars are the weights
    assert fig["data"][2]["x"] == [3]                                     # the chosen K is marked
    before = fig["data"][0]["y"]
    e.k.value = 6
    assert drawn(e)["data"][0]["y"] != before and drawn(e)["data"][2]["x"] == [6]
    report_time("EstimateExplorer, B = 8", e)


def test_estimate_explorer_binary_is_passk_and_errors_in_place() -> None:
    e = widgets.EstimateExplorer("1 0 0 1 0 0 0 0", k=4)
    assert e.result["binary"] and "pass@K" in e.message.value
    # pass@K = 1 - C(B - c, K) / C(B, K) with c = 2 correct out of 8
    assert e.result["by_k"] == pytest.approx([1 - math.comb(6, k) / math.comb(8, k) for k in range(1, 9)])
    e.rewards.value = "1, 0, yes"
    shows_error(e, "reward 3, 'yes', is not a number")
    e.rewards.value = " ".join(["1"] * 65)
    shows_error(e, "at most 64")
    e.rewards.value = ", ".join(str(i / 64) for i in range(64))             # the largest group offered
    e.k.value = 32
    assert e.error is None and len(e.result["weights"]) == 64
    report_time("EstimateExplorer, B = 64", e)


# --------------------------------------------------------------------------- policy gradient
def test_gradient_explorer_signal_is_unbiased() -> None:
    g = widgets.GradientExplorer(rewards="0, 1/2, 1", probs="1/5, 1/2, 3/10", b=4, k=2)
    p, r = [Fraction(1, 5), Fraction(1, 2), Fraction(3, 10)], [Fraction(0), Fraction(1, 2), Fraction(1)]
    truth = [float(v) for v in reference.maxk_objective_gradient(p, r, 2)]
    assert g.result["exact"] == pytest.approx(truth, abs=1e-12)
    assert g.result["expected"] == pytest.approx(truth, abs=1e-12)
    assert g.result["objective"] == pytest.approx(float(reference.maxk_objective(p, r, 2)), abs=1e-12)
    assert all(s > 0 for s in g.result["mean_signal"])                    # the signal pushes every answer up
    fig = drawn(g)
    assert fig["data"][0]["y"] == pytest.approx(truth) and fig["data"][1]["y"] == pytest.approx(truth, abs=1e-12)
    var_b4 = g.result["variance"]
    g.b.value = 7                                                           # the largest B offered: 3^7 batches
    assert g.result["expected"] == pytest.approx(truth, abs=1e-12) and g.result["variance"] < var_b4
    report_time("GradientExplorer, 3^7 batches", g)


def test_gradient_explorer_errors_in_place() -> None:
    g = widgets.GradientExplorer(b=3, k=2)
    g.k.value = 4
    shows_error(g, "K = 4 > B = 3")
    g.k.value = 2
    assert g.error is None and g.figure is not None and len(g.plot.outputs) == 1
    g.probs.value = "1/2, 1/2, 1/2"
    shows_error(g, "sum to 1")
    g.probs.value = "1/2, 1/2"
    shows_error(g, "one per action")
    g.probs.value = "0.2, 0.5, three tenths"
    shows_error(g, "probability 3")
    g.rewards.value, g.probs.value = "0, 1/4, 1/2, 3/4, 1", "1/5, 1/5, 1/5, 1/5, 1/5"
    g.b.value = 6
    shows_error(g, "15625 batches")


# --------------------------------------------------------------------------- baselines
def test_advantage_explorer_follows_controls() -> None:
    e = widgets.AdvantageExplorer("0.1, 0.3, 0.5, 0.7, 0.9", k=2, method="maxpo")
    expected = [-1 / 15, -1 / 15, -1 / 30, 1 / 30, 2 / 15]
    assert e.result["advantages"] == pytest.approx(expected, abs=1e-12)
    assert e.result["sum"] == pytest.approx(0, abs=1e-12)
    assert "centred" in e.message.value and "not centred" not in e.message.value
    assert drawn(e)["data"][0]["y"] == pytest.approx(expected, abs=1e-12)
    assert "Σ A<sub>i</sub> = 0 (centred)" in drawn(e)["layout"]["title"]["text"]

    e.method.value = "pkpo_loo1"
    assert e.result["advantages"] == pytest.approx([0, 0.02, 0.06, 0.12, 0.20], abs=1e-12)
    assert e.result["sum"] == pytest.approx(0.4)
    assert "not centred" in e.message.value and "= 0.4" in drawn(e)["layout"]["title"]["text"]
    assert drawn(e)["data"][0]["y"] == pytest.approx([0, 0.02, 0.06, 0.12, 0.20], abs=1e-12)

    e.method.value = "maxpo"
    e.rewards.value = "1 0 0 1 0 0 0 0"
    assert e.k.max == 8
    e.k.value = 4
    assert e.result["advantages"][0] == pytest.approx(3 / 14)
    assert e.result["advantages"][1] == pytest.approx(-1 / 14)
    assert e.result["variance"] > 0
    report_time("AdvantageExplorer, B = 8", e)


def test_advantage_explorer_shows_errors() -> None:
    e = widgets.AdvantageExplorer("0, 1, 2", k=3, method="pkpo_loo1")
    assert e.error is None
    e.method.value = "maxpo"                # K = B is refused, with the package's message
    shows_error(e, "k <= B - 1")
    e.k.value = 2
    assert e.error is None and e.result["sum"] == pytest.approx(0, abs=1e-12) and len(e.plot.outputs) == 1
    e.method.value = "chen_passk"           # a binary-only method on real rewards
    shows_error(e, "needs binary rewards")
    e.rewards.value = "1, 0, 1"
    assert e.error is None
    e.rewards.value = "0, one"
    shows_error(e, "not a number")


def test_advantage_explorer_clamps_k_when_batch_shrinks() -> None:
    e = widgets.AdvantageExplorer("0, 1, 2, 3, 4", k=4, method="pkpo_s")
    e.rewards.value = "0, 1"
    assert e.k.value <= 2 and e.result is not None and len(e.result["advantages"]) == 2
    assert len(drawn(e)["data"][0]["y"]) == 2


# --------------------------------------------------------------------------- canonical
def test_variance_explorer() -> None:
    v = widgets.VarianceExplorer(rewards="0, 0.5, 1", probs="1/2, 1/3, 1/6", b=4, k=2)
    assert set(v.result) == set(widgets.MAXK_METHODS)
    for name, row in v.result.items():
        assert row["bias"] < 1e-12, name
        assert row["offset_spread"] < 1e-12, name
    assert v.result["maxpo"]["mean_abs_sum"] < 1e-12
    assert v.result["pkpo_s"]["offset"] > 0
    fig = drawn(v)
    assert fig["data"][0]["y"] == pytest.approx([row["variance"] for row in v.result.values()])
    before = v.result["maxpo"]["variance"]
    v.k.value = 3
    assert v.result["maxpo"]["variance"] != before
    v.k.value = 4                            # K = B: maxpo undefined, pkpo_s and loo-1 remain
    assert "maxpo" not in v.result and "pkpo_loo1" in v.result
    assert "not defined" in v.message.value and len(drawn(v)["data"][0]["y"]) == len(v.result)
    v.b.value, v.k.value = 6, 3              # the largest B offered: 3^6 batches, five methods
    assert v.error is None
    report_time("VarianceExplorer, 3^6 batches x 5 methods", v)
    v.probs.value = "1/2, 1/2, 1/2"
    shows_error(v, "sum to 1")
    v.probs.value = "1/2, 1/2"
    shows_error(v, "one per action")
    v.probs.value, v.methods.value = "1/2, 1/3, 1/6", ("maxpo",)
    v.k.value = 6
    shows_error(v, "none of the chosen methods")


# --------------------------------------------------------------------------- computing
def test_precision_explorer() -> None:
    p = widgets.PrecisionExplorer(log2_b=6, k_fraction=0.25, offset=1000.0)
    assert p.b == 64 and p.k_value == 16
    assert p.result["package"]["relative_error"] < 1e-6
    noshift = p.result["float32, no shift"]["relative_error"]
    assert drawn(p)["layout"]["yaxis"]["type"] == "log"
    p.offset.value = 0.001
    assert p.result["float32, no shift"]["relative_error"] < noshift
    p.k_fraction.value = 0.0
    assert p.k_value == 1 and "K = 1" in p.message.value
    p.log2_b.value = p.log2_b.max            # the largest B offered
    assert p.error is None
    report_time(f"PrecisionExplorer, B = {p.b}", p)


def test_precision_figure_draws_zero_errors_at_the_floor() -> None:
    summary = {"package": {"relative_error": 0.0, "centering_error": 1e-9}}
    fig = figures.precision_figure(summary, 8, 2)
    assert fig.data[0].y == (figures.LOG_FLOOR,) and fig.data[0].customdata == (0.0,)


# --------------------------------------------------------------------------- every bad value, in place
BAD_VALUES = {  # typed text -> a fragment of the message the reader sees
    "1e400": "too large",
    "-1e400": "too large",
    "1e200": "too large",
    "inf": "not a number",
    "nan": "not a number",
    "1/0": "not a number",
    "abc": "not a number",
    "": "at least one",
}


def _text_boxes() -> list[tuple[str, object, str]]:
    return [
        ("EstimateExplorer.rewards", lambda: widgets.EstimateExplorer(), "rewards"),
        ("AdvantageExplorer.rewards", lambda: widgets.AdvantageExplorer(), "rewards"),
        ("GradientExplorer.rewards", lambda: widgets.GradientExplorer(), "rewards"),
        ("GradientExplorer.probs", lambda: widgets.GradientExplorer(), "probs"),
        ("VarianceExplorer.rewards", lambda: widgets.VarianceExplorer(), "rewards"),
        ("VarianceExplorer.probs", lambda: widgets.VarianceExplorer(), "probs"),
    ]


@pytest.mark.parametrize("box", _text_boxes(), ids=[b[0] for b in _text_boxes()])
@pytest.mark.parametrize("bad", list(BAD_VALUES), ids=[repr(v) for v in BAD_VALUES])
def test_every_bad_value_gets_a_message_in_place(box, bad: str) -> None:
    _, make, attr = box
    e = make()
    control = getattr(e, attr)
    good = control.value
    items = good.replace(",", " ").split()
    control.value = ", ".join([bad, *items[1:]]) if bad else ""  # the first entry replaced
    shows_error(e, BAD_VALUES[bad])
    control.value = good  # and the explorer recovers
    assert e.error is None and e.figure is not None


class _Stub(Explorer):
    """An explorer whose computation returns, or raises, what the test asks for."""

    def __init__(self, outcome: object) -> None:
        import ipywidgets

        self.outcome = outcome
        self._start([], [ipywidgets.Text()])

    def _compute(self) -> object:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def _figure(self, result: object) -> object:
        return figures.go.Figure()

    def _caption(self, result: object) -> str:
        return "<p>ok</p>"


@pytest.mark.parametrize(("outcome", "fragment"), [
    ({"a": [1.0, float("inf")]}, "not finite"),
    ({"a": (float("nan"),)}, "not finite"),
    (OverflowError("int too large to convert to float"), "OverflowError"),
    (ZeroDivisionError("division by zero"), "ZeroDivisionError"),
])
def test_a_result_that_is_not_finite_or_an_arithmetic_error_is_reported_in_place(outcome, fragment) -> None:
    shows_error(_Stub(outcome), fragment)


def test_a_finite_result_is_drawn() -> None:
    e = _Stub({"a": [1.0, (2.0, 3)], "b": None})
    assert e.error is None and e.figure is not None

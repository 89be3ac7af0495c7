"""Every formula label of the unified view has a LaTeX form for the method table."""
from maxpo.theory import unified_view as unified


def test_every_label_has_tex_and_math_delimiters() -> None:
    assert set(unified.FORMULA_TEX) == set(unified.FORMULA_TEXT)
    assert set(unified.OFFSET_FORMULAS) | set(unified.SCALE_FORMULAS) <= set(unified.FORMULA_TEX)
    assert unified.formula_math("(K/B) J_K") == r"\(\tfrac{K}{B} J_K\)"
    assert unified.formula_math(None) == "—"
    assert unified.formula_math("unknown label") == "unknown label"

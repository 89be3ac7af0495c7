"""Reading what a reader types into an explorer's text boxes.

Every error names the offending entry, so an explorer can show it in place.
"""
from __future__ import annotations

from fractions import Fraction

__all__ = ["MAX_MAGNITUDE", "parse_fractions", "parse_numbers"]

#: Largest size of a typed value: sums and differences of a group's rewards stay far from float64's 1.8e308.
MAX_MAGNITUDE = 1e100


def parse_fractions(text: str, what: str = "value") -> list[Fraction]:
    """Parse ``"0.1, 0.3 1/2"`` (commas or spaces; decimals or fractions) into exact fractions.

    ``"1/3"`` stays exactly one third and ``"0.1"`` exactly one tenth, so exact
    enumerations over a typed policy stay small rationals. ``what`` names the
    box in error messages (``"reward"``, ``"probability"``). A value larger than
    :data:`MAX_MAGNITUDE` in size (``1e400``, ``-1e200``) is refused with a
    ``ValueError`` too, so no computation overflows.
    """
    items = [t for t in text.replace(",", " ").split() if t]
    if not items:
        raise ValueError(f"enter at least one {what}")
    out = []
    for pos, t in enumerate(items, start=1):
        try:
            value = Fraction(t)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{what} {pos}, {t!r}, is not a number (use decimals like 0.5 or fractions like 1/2)") \
                from None
        if abs(value) > MAX_MAGNITUDE:
            raise ValueError(f"{what} {pos}, {t!r}, is too large: the explorers take values up to "
                             f"{MAX_MAGNITUDE:.0e} in size (float64 would overflow)")
        out.append(value)
    return out


def parse_numbers(text: str, what: str = "value") -> list[float]:
    """:func:`parse_fractions` as floats."""
    return [float(v) for v in parse_fractions(text, what)]

"""ipywidgets explorers for live Jupyter sessions: each plots what it computes (they need a running kernel).

* :mod:`maxpo.explorers.inputs` -- parsing what a reader types, with errors that say where.
* :mod:`maxpo.explorers.summaries` -- the numbers, as pure functions calling the package.
* :mod:`maxpo.explorers.figures` -- plotly figures of those numbers.
* :mod:`maxpo.explorers.base` -- the live plumbing: controls in, figure or in-place error out.
* :mod:`maxpo.explorers.explorers` -- one explorer per theory chapter.
"""
from __future__ import annotations

from maxpo.explorers.explorers import (
    AdvantageExplorer,
    EstimateExplorer,
    GradientExplorer,
    PrecisionExplorer,
    VarianceExplorer,
)
from maxpo.explorers.inputs import parse_fractions, parse_numbers
from maxpo.explorers.summaries import (
    MAXK_METHODS,
    advantage_summary,
    estimate_summary,
    gradient_summary,
    precision_summary,
    variance_summary,
)

__all__ = [
    "MAXK_METHODS",
    "AdvantageExplorer",
    "EstimateExplorer",
    "GradientExplorer",
    "PrecisionExplorer",
    "VarianceExplorer",
    "advantage_summary",
    "estimate_summary",
    "gradient_summary",
    "parse_fractions",
    "parse_numbers",
    "precision_summary",
    "variance_summary",
]

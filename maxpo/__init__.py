"""maxpo: verified max@K / pass@K policy-gradient advantage estimators (MaxPO and friends)."""
from __future__ import annotations

__version__ = "0.1.0"

from maxpo.estimators import METHODS, advantages, maxk_estimate, passk_estimate  # noqa: E402

__all__ = ["METHODS", "advantages", "maxk_estimate", "passk_estimate", "__version__"]

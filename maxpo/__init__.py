"""maxpo: verified max@K / pass@K policy-gradient advantage estimators (MaxPO and friends)."""
from __future__ import annotations

__version__ = "0.1.0"

from maxpo.estimators import METHODS, advantages, maxk_estimate, passk_estimate  # noqa: E402
from maxpo.family import (  # noqa: E402
    batch_optimal_lambda,
    family_gradients,
    lambda_advantages,
    offset_to_noise,
    optimal_lambda,
    variance_quadratic,
)

__all__ = [
    "METHODS", "advantages", "maxk_estimate", "passk_estimate", "__version__",
    "lambda_advantages", "variance_quadratic", "optimal_lambda", "family_gradients",
    "batch_optimal_lambda", "offset_to_noise",
]

"""maxpo.figures: plotly styling of the book's figures (``viz``) and quick/full sample sizes (``settings``).

The lowest page layer: it imports nothing of maxpo, so the experiments, the lab and the
benchmarks may all draw with it.
"""

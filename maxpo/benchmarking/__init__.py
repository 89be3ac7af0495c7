"""Speed measurement: timing estimator calls and reading the committed benchmark results.

:mod:`~maxpo.benchmarking.timing` times calls; :mod:`~maxpo.benchmarking.results` reads the results files.

Used by ``benchmarks/bench_advantages.py`` and by the computing chapter, so a
build-time timing and a committed benchmark are measured the same way.
"""

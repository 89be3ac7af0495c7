"""Controlled experiments: the bandit gradient-estimator study and the maze training comparison.

Run from the command line (``python -m maxpo.experiments --help``) or call
:func:`maxpo.experiments.bandit_study.run_bandit_study` and
:func:`maxpo.experiments.maze_study.run_maze_study` from Python. Both are seeded
and deterministic on CPU and return JSON-ready dicts.
"""

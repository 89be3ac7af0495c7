"""Command line: ``python -m maxpo.experiments {bandit,maze} --out FILE.json``.

Each study is seeded and deterministic on CPU; the JSON it writes carries its
provenance (command, git commit, torch version, machine, wall time, date).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import torch


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m maxpo.experiments",
        description="Run the bandit gradient-estimator study or the maze training comparison "
                    "and write the results (with provenance) as JSON.",
    )
    sub = p.add_subparsers(dest="study", required=True, metavar="{bandit,maze}")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", required=True, help="where to write the JSON results")
        sp.add_argument("--quick", action="store_true", help="a small version that runs in seconds")
        sp.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bar")

    b = sub.add_parser("bandit", help="bias, variance, cosine and SNR of every estimator on softmax bandits",
                       description="For every bandit problem, (B, K) setting and method of maxpo.METHODS: "
                                   "bias against the exact gradient, total variance, cosine, SNR, with "
                                   "grouped-jackknife confidence intervals.")
    common(b)
    b.add_argument("--draws", type=int, default=None, help="groups drawn per setting (default 10000)")
    b.add_argument("--seed", type=int, default=None, help="base seed (default 0)")
    b.add_argument("--problems", nargs="+", default=None,
                   help="bandit problems (default: bernoulli light heavy jackpot)")

    m = sub.add_parser("maze", help="train every estimator on the sparse-reward mazes, several seeds",
                       description="Trains every method on the two_goals maze (and maxpo over a range of K, "
                                   "and a one-goal control maze), several seeds each; writes exact learning "
                                   "curves of pass@k with 95%% bands over seeds.")
    common(m)
    m.add_argument("--seeds", type=int, default=None, help="seeds per method (default 10)")
    m.add_argument("--steps", type=int, default=None, help="training steps per run (default 400)")
    m.add_argument("--experiments", nargs="+", default=None, choices=["comparison", "k_sweep", "control"],
                   help="which experiments to run (default: all three)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from maxpo.experiments.provenance import provenance, write_json

    command = "python -m maxpo.experiments " + " ".join(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    if args.study == "bandit":
        from maxpo.experiments import bandit_study as bs

        over = {k: v for k, v in {"draws": args.draws, "seed": args.seed,
                                  "problems": tuple(args.problems) if args.problems else None}.items()
                if v is not None}
        bandit_cfg = bs.quick_config(**over) if args.quick else bs.BanditStudyConfig(**over)
        result = bs.run_bandit_study(bandit_cfg, progress=not args.no_progress)
        result["rows"] = bs.rows_to_table(result["rows"])
    else:
        from maxpo.experiments import maze_study as ms

        over = {k: v for k, v in {"seeds": args.seeds,
                                  "experiments": tuple(args.experiments) if args.experiments else None}.items()
                if v is not None}
        maze_cfg = ms.quick_config(**over) if args.quick else ms.MazeStudyConfig(**over)
        if args.steps is not None:
            maze_cfg = ms.with_train(maze_cfg, steps=args.steps)
        result = ms.run_maze_study(maze_cfg, progress=not args.no_progress)
    result["provenance"] = provenance(command, time.perf_counter() - start)
    path = write_json(result, args.out, digits=10)
    print(f"wrote {path} ({result['provenance']['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The lab's gradient study at several checkpoints and prompt sets, written to one JSON file.

    python benchmarks/lab_gradient_study.py --config RUN/config.json --checkpoint warm --checkpoint step60=PATH \\
        --prompt-seeds 12345,777 --prompts 16 --repeats 32 --out book/data/lab/gradient_study.json

``warm`` is the cached warm start of the config; ``NAME=PATH`` a lab checkpoint.
Each (checkpoint, prompt seed) pair is one :func:`maxpo.lab.gradvar.gradient_study`;
the file is rewritten after each (``"complete": false`` until the last), with the
provenance of the machine (CPU, load, torch), the commit, the command, wall and CPU time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from maxpo.lab.checkpoint import load_model_weights
from maxpo.lab.compare import write_result
from maxpo.lab.config import load_config
from maxpo.lab.gradvar import gradient_study
from maxpo.lab.provenance import provenance, utc_now
from maxpo.lab.warmstart import build_policy, warm_start


def merge(paths: list[str], out: str) -> None:
    """Join complete study files of the same configuration into one (see the module docstring)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    for p, d in zip(paths, parts):
        if not d["complete"]:
            raise SystemExit(f"error: {p} is not complete")
        if d["config"] != parts[0]["config"] or d["checkpoints"] != parts[0]["checkpoints"]:
            raise SystemExit(f"error: {p} has another configuration or other checkpoints than {paths[0]}")
    provs = [d["provenance"] for d in parts]
    shared = {k: v for k, v in provs[0].items() if all(q.get(k) == v for q in provs)}
    top = {**shared, "started": min(q["started"] for q in provs), "finished": max(q["finished"] for q in provs),
           "wall_seconds": max(q["wall_seconds"] for q in provs), "cpu_seconds": sum(q["cpu_seconds"] for q in provs),
           "processes": len(provs)}
    write_result({**parts[0], "provenance": top, "parts": provs,
                  "prompt_seeds": [s for d in parts for s in d["prompt_seeds"]],
                  "results": [r for d in parts for r in d["results"]]}, out)


def main() -> None:
    if "--merge" in sys.argv:
        i = sys.argv.index("--merge")
        rest = sys.argv[i + 1:]
        if "--out" not in rest or rest.index("--out") < 1:
            raise SystemExit("error: --merge needs files and --out FILE")
        j = rest.index("--out")
        merge(rest[:j], rest[j + 1])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--checkpoint", action="append", required=True, help="warm, or NAME=PATH")
    ap.add_argument("--prompt-seeds", default="12345,777")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=32)
    ap.add_argument("--methods", default="grpo,pkpo_loo1,maxpo")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(a.config)
    device = torch.device("cpu")
    methods = a.methods.split(",")
    seeds = [int(x) for x in a.prompt_seeds.split(",")]
    t0, c0, started = time.perf_counter(), time.process_time(), utc_now()
    load0 = os.getloadavg()
    results: list[dict] = []

    def write(complete: bool) -> None:
        prov = {**provenance(device, ["python"] + sys.argv), "started": started, "finished": utc_now(),
                "wall_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                "load_average_start": list(load0), "load_average_end": list(os.getloadavg())}
        write_result({"label": a.label, "complete": complete, "provenance": prov, "config": cfg.to_dict(),
                      "methods": methods, "prompt_seeds": seeds, "prompts": a.prompts, "repeats": a.repeats,
                      "checkpoints": [c.split("=")[0] for c in a.checkpoint], "results": results}, a.out)

    for spec in a.checkpoint:
        name, _, path = spec.partition("=")
        if name == "warm":
            model, tok, _ = warm_start(cfg, device, False, show=False)
            step = 0
        else:
            model, tok = build_policy(cfg, device)
            step = load_model_weights(Path(path), model)
        model.eval()
        for seed in seeds:
            t1, c1 = time.perf_counter(), time.process_time()
            res = gradient_study(model, tok, cfg, methods, a.prompts, a.repeats, seed)
            results.append({"checkpoint": name, "step": step, "prompt_seed": seed, **res,
                            "wall_seconds": time.perf_counter() - t1, "cpu_seconds": time.process_time() - c1})
            print(f"{name} seed {seed}: lambda* {res['family']['lambda_star']['value']:.3f} "
                  f"var0/var1 {res['family']['var0_over_var1']['value']:.3f} "
                  f"adaptive/var1 {res['adaptive']['var_adaptive_over_var1']['value']:.3f} "
                  f"lambda_hat {res['adaptive']['lambda_hat_final']['value']:.3f} "
                  f"({time.perf_counter() - t1:.0f} s)", flush=True)
            write(False)
    write(True)


if __name__ == "__main__":
    main()

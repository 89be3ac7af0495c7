"""Check every advantage method on an accelerator against the CPU (no pytest needed).

The GPU machine may lack pytest; this script is the estimator part of one device
call (see ``gpu_session.sh``). Exits non-zero, naming the method, on a mismatch.

    python benchmarks/check_device.py --device cuda
"""
from __future__ import annotations

import argparse
import sys

import torch

import maxpo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda was asked for but CUDA is not available")
    gen = torch.Generator().manual_seed(0)
    cases = {
        "binary": (torch.rand(512, 16, generator=gen) > 0.6).float(),
        "continuous": torch.rand(64, 257, generator=gen),
        "ties": (torch.rand(64, 64, generator=gen) * 4).round() / 4,
    }
    failures = []
    for name, rewards in cases.items():
        b = rewards.shape[-1]
        for method, info in maxpo.METHODS.items():
            if info.binary_only and name != "binary":
                continue
            if method == "maxpo_pairwise" and b > 64:
                continue
            k = b if method in ("tang_loo", "grpo_passk") else 4
            for dtype in (torch.float32, torch.float64):
                cpu = maxpo.advantages(rewards.to(dtype), k, method)
                dev = maxpo.advantages(rewards.to(device=device, dtype=dtype), k, method)
                ok = dev.device.type == device.type and dev.dtype == dtype
                err = (dev.cpu().double() - cpu.double()).abs().max().item()
                tol = 1e-5 if dtype == torch.float32 else 1e-12
                if not ok or err > tol * max(1.0, cpu.abs().max().item()):
                    failures.append(f"{method} on {name} {dtype}: max error {err:.3g}, device {dev.device}")
    mask = torch.rand(32, 12, generator=gen) > 0.3
    mask[:, :3] = True
    r = torch.rand(32, 12, generator=gen)
    on_device = maxpo.advantages(r.to(device), 2, mask=mask.to(device)).cpu()
    err = (on_device - maxpo.advantages(r, 2, mask=mask)).abs().max()
    if err > 1e-6:
        failures.append(f"masked maxpo: max error {err:.3g}")
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}: {len(failures)} mismatches")
    for f in failures:
        print("  " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

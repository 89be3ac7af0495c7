#!/usr/bin/env bash
# One prepared device call for a session that is lent a GPU (run from the repository root,
# e.g. with the device tool: `bash benchmarks/gpu_session.sh`). Writes under $OUT
# (default benchmarks/results): the CUDA estimator check, the CUDA benchmark and the lab's
# GPU comparison, each with its provenance. Commit the JSON files it produces:
#   $OUT/cuda_*.json -> benchmarks/results/,  $OUT/gpu_compare.json -> book/data/lab/
set -u
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python benchmarks/check_device.py --device cuda 2>&1 | tee "$OUT/check_device.txt"
gpu=$(python -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())" 2>/dev/null || echo gpu)
python benchmarks/bench_advantages.py --device cuda --pairwise-max-b 4096 --out "$OUT/cuda_${gpu}.json"
MAXPO_LAB_CACHE=/tmp/maxpo-lab-cache timeout 480 python -m maxpo.lab compare --preset gpu \
    --methods grpo,pkpo_loo1,maxpo --seeds 0,1,2 --work-dir /tmp/maxpo-lab-runs \
    --out "$OUT/gpu_compare.json" --label "GPU results: preset gpu, 3 methods x 3 seeds" --no-progress

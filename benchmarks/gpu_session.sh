#!/usr/bin/env bash
# One prepared device call for a session that is lent a GPU. Run from the root of a copy of
# the repository (no git checkout needed), passing the commit the copy was made from:
#
#     bash benchmarks/gpu_session.sh <commit>        # or MAXPO_GIT_COMMIT=<commit> bash ...
#
# Writes under $OUT (default benchmarks/results): the CUDA estimator check, the CUDA
# benchmark and the lab's GPU comparison (rewritten after each finished run, so a cut-off
# session still leaves every finished run), each with provenance. Commit the JSON files:
#   $OUT/cuda_*.json -> benchmarks/results/,  $OUT/gpu_compare.json -> book/data/lab/
# Prints one line per held-out evaluation. Uses python3 (or $PYTHON).
#
# Prerequisites on the device machine: python3 with torch (CUDA), numpy and tqdm; nothing else
# (no plotly, jupyter or git). After the call, on the development machine: copy the JSON files
# as below and rebuild the book (`make book`): the lab chapter shows book/data/lab/gpu_compare.json
# beside the CPU results whenever that file exists.
#
# Time budget: $MAXPO_GPU_BUDGET seconds in all (default 780: a 15-minute device lease less its
# start-up). The run times below are an ESTIMATE, never measured on a GPU.
# Measured on the CPU (CPU time of one process, so contention does not count): the verifier
# scores 1024 answers in 0.10 s, the gpu preset's RL step verifies 1024 answers and its
# evaluation 8192 (+16384 for each pass@k curve); the model is 1.8M parameters, so its
# forward/backward passes take milliseconds on such a GPU and a step is dominated by Python
# (verifier, sampling loop of 16 token steps): about 0.2-0.3 s. Per run: 150 steps (~40 s),
# 4 evaluations + 2 curves (~10 s); 6 runs ~5 min, plus the warm start (at most 2000 steps,
# ~0.5 min), the gradient-variance pass (~0.5 min), the estimator check and benchmark (~0.5 min).
# Two passes, so that the budget decides how much is run but never what is lost: first the
# 2-seed comparison with its gradient-variance pass (written to gpu_compare_2seeds.json), then
# the same work directory resumed with 5 seeds (the CPU study's 10 do not fit one lease) (finished runs are reused) into
# gpu_compare.json. Each pass runs under `timeout` (SIGTERM: the running run checkpoints,
# finished runs are already in the JSON), stopping RESERVE seconds before the budget's end; a
# pass that would get under a minute is skipped, never started with `timeout 0` (no limit) or a
# negative limit (timeout's exit 125). If the 5-seed pass does not complete, gpu_compare.json is
# the 2-seed result.
set -u
COMMIT=${1:-${MAXPO_GIT_COMMIT:-}}
if [ -z "$COMMIT" ] && ! git rev-parse HEAD >/dev/null 2>&1; then
    echo "usage: bash benchmarks/gpu_session.sh <commit>   (no git here: pass the commit this copy was made from)" >&2
    exit 2
fi
[ -n "$COMMIT" ] && export MAXPO_GIT_COMMIT="$COMMIT"
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results}
BUDGET=${MAXPO_GPU_BUDGET:-780}
RESERVE=${MAXPO_GPU_RESERVE:-90}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
seconds_left() { echo $(( BUDGET - RESERVE - ($(date +%s) - START) )); }

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY benchmarks/check_device.py --device cuda 2>&1 | tee "$OUT/check_device.txt"
gpu=$($PY -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower())" 2>/dev/null || echo gpu)
timeout -s TERM 60 $PY benchmarks/bench_advantages.py --device cuda --min-time 0.2 --pairwise-max-b 4096 \
    --out "$OUT/cuda_${gpu}.json"
echo "estimator check and benchmark: $(( $(date +%s) - START )) s"

compare_pass() {  # compare_pass SEEDS OUTFILE LABEL
    local left
    left=$(seconds_left)
    if [ "$left" -lt 60 ]; then
        echo "skipped the comparison with seeds $1: only $left s left of the budget" >&2
        return 1
    fi
    MAXPO_LAB_CACHE=/tmp/maxpo-lab-cache timeout -s TERM "$left" $PY -m maxpo.lab compare --preset gpu \
        --methods grpo,pkpo_loo1,maxpo --seeds "$1" --work-dir /tmp/maxpo-lab-runs \
        --out "$2" --label "$3" --no-progress --resume
}
compare_pass 0,1 "$OUT/gpu_compare_2seeds.json" "GPU results: preset gpu, 3 methods x 2 seeds"
if ! compare_pass 0,1,2,3,4 "$OUT/gpu_compare.json" "GPU results: preset gpu, 3 methods x 5 seeds"; then
    [ -f "$OUT/gpu_compare_2seeds.json" ] && cp "$OUT/gpu_compare_2seeds.json" "$OUT/gpu_compare.json"
fi
echo "session: $(( $(date +%s) - START )) s"

#!/usr/bin/env bash
# GPU check of the neural backend, run from the repository root on a machine with one CUDA GPU:
#
#     bash benchmarks/gpu_check.sh
#
# Needs python3 with torch (CUDA build), numpy, scipy, pandas, matplotlib, tqdm, threadpoolctl;
# the project need not be installed (PYTHONPATH=. is used). Writes everything under $OUT:
#   bench_neural.txt          benchmarks/bench_neural.py (cpu and cuda rates, ratios, projections)
#   shallow.log               the paper-size shallow experiment's log
#   shallow/neural_shallow.csv its table (10 seeds, 6 settings + rank 3k at T = 2,
#                             40,000 + 15,000 steps) and figures/neural_shallow_paper.png
#   env.txt                   versions and the GPU
# Overrides (for a dry run on CPU at tiny scale; PYTHON picks an interpreter that has torch;
# BENCH_QUICK=--quick takes fewer steps per benchmark measurement):
#   OUT=/tmp/g STEPS_SCALE=0.002 DEVICE=cpu bash benchmarks/gpu_check.sh
#   PYTHON=.venv/bin/python OUT=/tmp/g STEPS_SCALE=0.002 DEVICE=cpu bash benchmarks/gpu_check.sh
# Time limits per stage keep the whole check under ~8 minutes on one H100; a stage that runs
# over is stopped and the script goes on, so a partial log is still useful.
set -u -o pipefail
set -x
export PYTHONUNBUFFERED=1
export TQDM_MININTERVAL="${TQDM_MININTERVAL:-10}"  # progress lines every 10 s in the logs
OUT="${OUT:-./gpu_out}"
DEVICE="${DEVICE:-cuda}"
STEPS_SCALE="${STEPS_SCALE:-1}"
PYTHON="${PYTHON:-python3}"
BENCH_LIMIT="${BENCH_LIMIT:-200}"
SHALLOW_LIMIT="${SHALLOW_LIMIT:-240}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
status=0

{
  date -u
  "$PYTHON" --version
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
  nvidia-smi || true
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "gpu_check: $PYTHON cannot import torch; set PYTHON=/path/to/python" >&2
  exit 2
fi

# (a) rates on every available device; on DEVICE=cpu only the CPU is measured.
if [ "$DEVICE" = "cpu" ]; then bench_devices="cpu"; else bench_devices="cpu $DEVICE"; fi
bench_quick="${BENCH_QUICK:-}"  # BENCH_QUICK=--quick: fewer steps per measurement
if [ "$STEPS_SCALE" != "1" ]; then bench_quick="--quick"; fi
timeout "$BENCH_LIMIT" "$PYTHON" benchmarks/bench_neural.py --devices $bench_devices $bench_quick \
  2>&1 | tee "$OUT/bench_neural.txt" || status=1

# (b) the paper-size shallow experiment through the command line (resumable: a rerun keeps
# finished settings), then its figure.
start=$SECONDS
timeout "$SHALLOW_LIMIT" "$PYTHON" -m lowrank_theory neural \
  --experiment shallow --size paper --device "$DEVICE" --steps-scale "$STEPS_SCALE" \
  --progress --out "$OUT/shallow" 2>&1 | tee "$OUT/shallow.log" || status=1
echo "shallow experiment wall time: $((SECONDS - start)) s" | tee -a "$OUT/shallow.log"
if [ -f "$OUT/shallow/neural_shallow.csv" ]; then
  "$PYTHON" -m lowrank_theory.figures.neural "$OUT/shallow/neural_shallow.csv" --out "$OUT/figures" \
    2>&1 | tee -a "$OUT/shallow.log" || status=1
else
  status=1
fi
ls -lR "$OUT"
exit $status

#!/usr/bin/env bash
# The GPU checks of issues 5 and 6 in one command, for a session lent a GPU machine.
#
#   bash scripts/gpu_checks.sh                       # on the GPU machine (the device tool's `run`)
#   DEVICE=cpu QUICK=1 bash scripts/gpu_checks.sh    # dry run of the same steps on a CPU, in seconds
#
# Needs: CT100 under $DATA_ROOT (copy ../shared/data/COVID-19-CT100 into the git-ignored
# device_data/ and carry it), wheels for what the machine lacks in .whl/ (smp, fvcore and their
# pure-Python needs, nibabel). Writes everything under $OUT (or out/) as one tarball plus the log.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
DATA_ROOT=${DATA_ROOT:-device_data}
OUT=${OUT:-out}
FOLDS=${FOLDS:-0}            # paper protocol on CT100: ~25k images per fold
QUICK=${QUICK:-0}
RESULTS="$OUT/results"
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
PY=${PY:-python3}
[ -x .venv/bin/python ] && [ "$DEVICE" = cpu ] && PY=.venv/bin/python

if [ "$QUICK" = 1 ]; then
  modes=eager; sizes=1; size=64; protocol=(--protocol smoke --set epochs=1); dataset=synthetic; extra=(--warmup 1 --repeats 2)
else
  modes=eager,cudagraph,bf16+channels_last+cudagraph,bf16+channels_last+compile,bf16+channels_last+compile+cudagraph
  sizes=1,30; size=512; protocol=(--protocol paper); dataset=CT100; extra=()
fi

echo "== 1. profile MiniSeg: paper loop and events, every mode (issue 6)"
$PY run_benchmark.py profile --models miniseg --device "$DEVICE" --modes "$modes" --batch-sizes "$sizes" \
    --size "$size" --method events,paper "${extra[@]}" --results "$RESULTS" --json > "$OUT/profile_miniseg.json"

echo "== 2. train MiniSeg, folds $FOLDS, $dataset (issue 5: img/s, wall time, DSC)"
$PY run_benchmark.py train --models miniseg --datasets "$dataset" --folds "$FOLDS" "${protocol[@]}" \
    --device "$DEVICE" --data-root "$DATA_ROOT" --results "$RESULTS" --no-progress --json > "$OUT/train_miniseg.json"

echo "== 3. profile the registry, eager fp32, batch 1 and 30 (issue 6)"
[ "$QUICK" = 1 ] && models=miniseg,enet || models='*'
$PY run_benchmark.py profile --models "$models" --device "$DEVICE" --batch-sizes "$sizes" --size "$size" \
    "${extra[@]}" --results "$RESULTS" > "$OUT/profile_registry.txt" || true

tar -C "$OUT" -czf "$OUT/results.tgz" results && rm -rf "$RESULTS"
echo "done: $OUT/results.tgz (unpack into the repository root, then run_benchmark.py report)"

#!/usr/bin/env bash
# Training throughput on a CUDA machine: fp32, then bf16 + channels_last (app vs plain loop,
# frozen extractor, data loader alone, per-step overhead, one whole-process memory run each).
# About 2-3 minutes on an H100; each setting is capped so the whole script stays under 4.
#
#   bash benchmarks/gpu.sh                # JSON to $OUT if set, else to benchmarks/results/
#   PYTHON=/path/to/python bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the app runs from the checkout, installed or not
DEST="${OUT:-benchmarks/results}"
mkdir -p "$DEST"

"$PYTHON" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)'

# All 44 batches of 32 the digits' training split has, seven timed rounds each. A setting that
# fails or hits its cap does not stop the other; the exit status says whether both finished.
COMMON=(--device cuda --batches 44 --repeats 7 --memory-repeats 1)
status=0
timeout 110 "$PYTHON" benchmarks/throughput.py "${COMMON[@]}" --precision fp32 \
    --json "$DEST/throughput-cuda-fp32.json" || status=$?
timeout 110 "$PYTHON" benchmarks/throughput.py "${COMMON[@]}" --precision bf16 --plain-precision bf16 --channels-last \
    --json "$DEST/throughput-cuda-bf16-channels-last.json" || status=$?
exit "$status"

#!/usr/bin/env bash
# The GPU tier, unattended, on a fresh machine with a CUDA GPU and PyTorch: installs what else the
# app needs (beside that PyTorch, never over it), runs `pytest -m cuda`, then benchmarks/gpu.py
# (training throughput over precision x channels_last x compile, the JPEG loader against GPU
# decode, nccl DDP with 2+ GPUs: one table). 2-4 minutes on one H100/H200, each part capped so the
# whole stays under 5; the exit status says whether every part passed.
#
#   bash benchmarks/gpu.sh                   # the app's packages from the index, if missing
#   bash benchmarks/gpu.sh --fetch .whl      # where the index is reachable: the wheels a GPU machine
#   WHEELS=.whl bash benchmarks/gpu.sh       #   without network needs (PYVER, default 3.12), then there
#
# Results: $OUT/gpu.json if OUT is set, else benchmarks/results/gpu.json; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

# Beside the machine's own torch: the app's pure-Python needs and pydantic-core (pyproject.toml's
# ranges; antlr4 4.9 is what Hydra 1.3's grammar was generated with: a source only, built by --fetch).
NEEDS=("hydra-core>=1.3,<1.4" "omegaconf>=2.3,<2.4" "hydra-zen>=0.13" "annotated-types>=0.6"
    "pydantic-core>=2.14,<3" "antlr4-python3-runtime==4.9.3")

if [[ "${1:-}" == "--fetch" ]]; then
    dest="${2:?--fetch DIR}"
    platforms=(--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" \
        --implementation cp "${platforms[@]}" -d "$dest" "${NEEDS[@]:0:5}"
    python3 -m pip wheel -q --no-deps -w "$dest" "${NEEDS[5]}"  # built here: pure Python, any machine
    ls "$dest"
    exit 0
fi

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import sys, torch
if not torch.cuda.is_available():
    sys.exit("benchmarks/gpu.sh: torch sees no CUDA GPU here; on a CPU, python benchmarks/gpu.py --device cpu --smoke checks the script")
print("GPU:", torch.cuda.get_device_name(0), "x", torch.cuda.device_count(), "| torch", torch.__version__)'
if ! "$PYTHON" -c 'import hydra, hydra_zen, omegaconf, pydantic_core, annotated_types' 2>/dev/null; then
    SITE="${SITE:-/tmp/app-site}"
    source=()
    if [[ -n "${WHEELS:-}" ]]; then source=(--no-index --find-links "$WHEELS"); fi
    "$PYTHON" -m pip install -q --no-deps --no-compile --target "$SITE" "${source[@]}" "${NEEDS[@]}"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the app runs from the checkout, installed or not
DEST="${OUT:-benchmarks/results}"
mkdir -p "$DEST"

status=0
# Only the CUDA tests' file: collecting the others would need the test extras (pydantic, mypy, ...).
timeout 90 "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py || status=$?
timeout 200 "$PYTHON" benchmarks/gpu.py --device cuda --json "$DEST/gpu.json" || status=$?
exit "$status"

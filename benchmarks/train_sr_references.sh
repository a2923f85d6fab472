#!/usr/bin/env bash
# The x2 reference networks of benchmarks/super_resolution.py (issue #3), trained by the same
# script, data, steps and learning rate as the shipped sr_x2 (train_shipped_sr.sh):
# keras.io's ESPCN and EDSR-small (32 channels x 8 blocks), each with and without the bilinear
# image-space skip. Each run checkpoints every epoch and resumes when started again.
# Then the x2 table: the shipped model against all four references.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for model in espcn espcn_skip edsr_small edsr_small_skip; do
    $PY examples/train_super_resolution.py --model $model --scale 2 --epochs 30 \
        --steps-per-epoch 100 --learning-rate 5e-4 --output runs/sr_refs/${model}_x2 --verbose 2
done
$PY benchmarks/super_resolution.py --scale 2 --model ours=saved_models/sr_x2/model.keras \
    $(for model in espcn espcn_skip edsr_small edsr_small_skip; do
        echo --model $model=runs/sr_refs/${model}_x2/model.keras; done) \
    | tee runs/sr_refs/benchmark_x2.md

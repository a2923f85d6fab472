#!/usr/bin/env bash
# The reference networks of benchmarks/super_resolution.py (issue #3), trained by the same
# script, data, steps and learning rates as the shipped sr_x2/x3/x4 (train_shipped_sr.sh):
# keras.io's ESPCN and EDSR-small (32 channels x 8 blocks), each with and without the bilinear
# image-space skip. x2 from scratch (30 x 100 steps); x3 and x4 fine-tuned from each reference's
# own x2 model for 20 x 100 steps, as the shipped x3/x4 are from sr_x2. Each run checkpoints
# every epoch and resumes when started again. Then one table per scale: the shipped model
# against all four references (runs/sr_refs/benchmark_x{2,3,4}.md).
# MODELS="espcn_skip edsr_small_skip" trains a subset; BENCHMARK=0 skips the tables (to time
# them later on a quiet machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODELS=${MODELS:-"espcn espcn_skip edsr_small edsr_small_skip"}
BENCHMARK=${BENCHMARK:-1}
for model in $MODELS; do
    $PY examples/train_super_resolution.py --model $model --scale 2 --epochs 30 \
        --steps-per-epoch 100 --learning-rate 5e-4 --output runs/sr_refs/${model}_x2 --verbose 2
done
for scale in 3 4; do
    for model in $MODELS; do
        $PY examples/train_super_resolution.py --model $model --scale $scale --epochs 20 \
            --steps-per-epoch 100 --learning-rate 3e-4 --warmup-steps 100 \
            --init-from runs/sr_refs/${model}_x2/model.keras \
            --output runs/sr_refs/${model}_x$scale --verbose 2
    done
done
[ "$BENCHMARK" = 1 ] || exit 0
for scale in 2 3 4; do
    $PY benchmarks/super_resolution.py --scale $scale \
        --model ours=saved_models/sr_x$scale/model.keras \
        $(for model in $MODELS; do
            echo --model $model=runs/sr_refs/${model}_x$scale/model.keras; done) \
        | tee runs/sr_refs/benchmark_x$scale.md
done

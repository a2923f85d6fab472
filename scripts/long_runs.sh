#!/usr/bin/env bash
# The long training runs of this release, one at a time, each resumable: run the same line again
# after an interruption (a kill loses at most --checkpoint-minutes of work). Each run's folder
# keeps this exact command in command.txt and its progress in history.csv (wall time, steps/s,
# validation PSNR-Y per 1,000 steps).
#
#   bash scripts/long_runs.sh sr_x2      # sr_fast x2 on bundled + collection photos, 30,000 steps
#   bash scripts/long_runs.sh sr_x3      # x3 from the sr_x2 run (upsampler new), 10,000 steps
#   bash scripts/long_runs.sh sr_x4      # x4 likewise
#   bash scripts/long_runs.sh classifier_fashion   # classifier_fashion, 30 epochs of Fashion-MNIST
#
# The SR runs need the photo collection: keras-attn data fetch-photos (once). The classifier
# run needs Fashion-MNIST in tfds (online, or offline from the Debian package
# dataset-fashion-mnist: see the README's "Data" section).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}

run() {  # run NAME ARGS...: the command goes into runs/NAME/command.txt, the log to train.log
  local name=$1; shift
  mkdir -p "runs/$name"
  echo "$*" > "runs/$name/command.txt"
  nice -n 10 "$@" --output "runs/$name" --verbose 2 >> "runs/$name/train.log" 2>&1
}

case "${1:?which run: sr_x2, sr_x3, sr_x4 or classifier_fashion}" in
  sr_x2)
    run sr_x2_collection "$BIN/keras-attn" train sr --model sr_fast --scale 2 \
      --dataset bundled_photos+photo_collection --epochs 30 --steps-per-epoch 1000 \
      --learning-rate 5e-4 --checkpoint-minutes 10
    ;;
  sr_x3|sr_x4)
    scale=${1#sr_x}
    run "sr_x${scale}_collection" "$BIN/keras-attn" train sr --model sr_fast --scale "$scale" \
      --init-from runs/sr_x2_collection/model.keras \
      --dataset bundled_photos+photo_collection --epochs 10 --steps-per-epoch 1000 \
      --learning-rate 3e-4 --warmup-steps 100 --checkpoint-minutes 10
    ;;
  classifier_fashion)
    # Validation during training on 5,000 training images (unaugmented): the test split is
    # read once, by the final evaluation.
    run classifier_fashion "$BIN/keras-attn" train classifier --model classifier_fashion \
      --dataset fashion_mnist --image-size 28 --epochs 30 --batch-size 128 \
      --learning-rate 2e-3 --warmup-steps 500 --weight-decay 0.05 --label-smoothing 0.1 \
      --random-erasing 0.5 --val-split 'train[:5000]' --checkpoint-minutes 10
    ;;
  *) echo "unknown run: $1" >&2; exit 2 ;;
esac

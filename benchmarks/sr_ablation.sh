#!/usr/bin/env bash
# Issue #16's ablation of the shipped sr_x2 recipe: the sr_fast architecture, 16 96-pixel crops
# per step, peak learning rate 5e-4 with 200 warm-up steps and cosine decay, Charbonnier loss,
# seed 0; one setting changed at a time. Each run resumes when started again.
#
#   data (3,000 steps):       bundled photos only | collection only | both
#   steps (both):             3,000 | 30,000 (sr_x2_collection, shipped as sr_x2 until the lomiri
#                             photos were added: scripts/long_runs.sh sr_x2)
#   data (30,000 steps):      both | both + 10 lomiri photos (shipped as sr_x2 until the
#                             60,000-step run: scripts/long_runs.sh sr_x2_lomiri)
#   steps (both + lomiri):    30,000 | 60,000 (the shipped sr_x2:
#                             scripts/long_runs.sh sr_x2_lomiri_60k)
#   attention stage (both, 3,000 steps): none | non-local
#   mixing (both, 3,000 steps): in proportion to pixels (the collection's ~300 tiles against
#                               14 bundled photos) | equal (--mix equal)
#   precision (both, 3,000 steps): float32 | mixed_bfloat16 (--precision; the saved model is
#                               float32, evaluated as the others)
#
# Then the held-out table, PSNR-Y / SSIM-Y on the bundled and the collection validation photos
# (runs/sr_ablation/table.md): whole images for the runs without attention (the numbers of the
# cards), and every run in overlapping tiles of 128 LR pixels, because a non-local stage
# attends over every pixel of its input and a whole multi-megapixel photo does not fit in
# memory. The long runs' rows are read from git (sr_x2_collection: saved_models/sr_x2 at commit
# 97be4af; sr_x2_lomiri: at commit ead90af) and from saved_models/sr_x2. RUNS="both_3k" trains a subset; TABLE=0
# skips the table. Wall time: about 15 minutes per 3,000-step run on the 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUNS=${RUNS:-"both_3k collection_3k both_3k_equal bundled_3k both_3k_nonlocal both_3k_bf16"}
TABLE=${TABLE:-1}
OUT=runs/sr_ablation

train() {  # train NAME DATASET [EXTRA ARGS...]
  local name=$1 dataset=$2; shift 2
  mkdir -p "$OUT/$name"
  local cmd=("$BIN/keras-attn" train sr --model sr_fast --scale 2 --dataset "$dataset"
    --epochs 30 --steps-per-epoch 100 --learning-rate 5e-4 "$@" --output "$OUT/$name")
  echo "${cmd[*]}" > "$OUT/$name/command.txt"
  nice -n 10 "${cmd[@]}" --verbose 2 >> "$OUT/$name/train.log" 2>&1
}

for run in $RUNS; do
  case $run in
    bundled_3k) train bundled_3k bundled_photos ;;
    collection_3k) train collection_3k photo_collection ;;
    both_3k) train both_3k bundled_photos+photo_collection ;;
    both_3k_equal) train both_3k_equal bundled_photos+photo_collection --mix equal ;;
    both_3k_nonlocal) train both_3k_nonlocal bundled_photos+photo_collection --attention nonlocal ;;
    both_3k_bf16) train both_3k_bf16 bundled_photos+photo_collection --precision mixed_bfloat16 ;;
    *) echo "unknown run: $run" >&2; exit 2 ;;
  esac
done

[ "$TABLE" = 1 ] || exit 0
from_git() {  # from_git COMMIT NAME: saved_models/sr_x2/model.keras at COMMIT, written once to
  # runs/NAME_COMMIT.keras; prints that path
  local out=runs/$2_$1.keras
  mkdir -p runs
  [ -s "$out" ] || { git show "$1":saved_models/sr_x2/model.keras > "$out.tmp" && mv "$out.tmp" "$out"; }
  echo "$out"
}
collection_30k=$(from_git 97be4af sr_x2_collection)
lomiri_30k=$(from_git ead90af sr_x2_lomiri)
plain=(--model bundled_3k=$OUT/bundled_3k/model.keras --model collection_3k=$OUT/collection_3k/model.keras
  --model both_3k=$OUT/both_3k/model.keras --model both_3k_equal=$OUT/both_3k_equal/model.keras
  --model both_3k_bf16=$OUT/both_3k_bf16/model.keras
  --model both_30k=$collection_30k --model both_lomiri_30k=$lomiri_30k
  --model both_lomiri_60k=saved_models/sr_x2/model.keras)
common=(--scale 2 --dataset bundled_photos --dataset photo_collection --no-speed)
{
  echo "Whole images:"
  "$BIN/python" benchmarks/super_resolution.py "${common[@]}" "${plain[@]}"
  echo
  echo "Tiles of 128 LR pixels:"
  "$BIN/python" benchmarks/super_resolution.py "${common[@]}" --tile 128 "${plain[@]}" \
    --model both_3k_nonlocal=$OUT/both_3k_nonlocal/model.keras
} | tee "$OUT/table.md"

#!/usr/bin/env bash
# The long training runs of this release, one at a time, each resumable: run the same line again
# after an interruption (a kill loses at most --checkpoint-minutes of work). Each run's folder
# keeps this exact command in command.txt and its progress in history.csv (wall time, steps/s,
# validation PSNR-Y per 1,000 steps).
#
#   bash scripts/long_runs.sh sr_x2      # sr_fast x2 on bundled + collection photos, 30,000 steps
#                                        # (sr_x2_collection, shipped before sr_x2_lomiri)
#   bash scripts/long_runs.sh sr_x2_lomiri  # sr_x2's run with 10 more photos
#                                          # (lomiri-wallpapers, halved, 4 more held out;
#                                          # scripts/fetch_lomiri_photos.py) mixed in. Run once
#                                          # (4,542 s): 34.32 / 44.97 dB held out, shipped
#                                          # until sr_x2_lomiri_60k
#   bash scripts/long_runs.sh sr_x2_lomiri_60k  # sr_x2_lomiri with 60,000 steps (the shipped
#                                          # sr_x2: 34.42 / 45.00 / 43.18 dB held out)
#   bash scripts/long_runs.sh sr_x2_bundled  # sr_x2's run on the 14 bundled photos alone (run
#                                          # once: it over-fit them, 33.88 / 43.68 dB held out,
#                                          # not shipped; docs/benchmarks.md, "Ablation")
#   bash scripts/long_runs.sh sr_x2_equal  # sr_x2's run with --mix equal (run once: 34.09 /
#                                          # 44.43 dB held out, below sr_x2; not shipped)
#   bash scripts/long_runs.sh sr_x2_hq   # sr_hq x2 (603 K parameters), same data, 30,000 steps,
#                                        # bfloat16 compute (about 2 h on 2 cores). Run once:
#                                        # 34.07 / 44.85 dB held out, below sr_x2: not shipped
#   bash scripts/long_runs.sh sr_x2_hq_fp32  # sr_x2_hq's run in float32 (about 5 h; not run:
#                                        # sr_x2_hq_ft showed float32 does not lift sr_hq)
#   bash scripts/long_runs.sh sr_x2_hq_ft  # sr_x2_hq + 10,000 float32 steps at 1e-4 (about 90
#                                        # min). Run once: 34.14 / 44.88 dB, below sr_x2: not shipped
#   bash scripts/long_runs.sh sr_x2_ft   # the shipped sr_x2 trained 10,000 steps more at a low
#                                        # learning rate (1e-4), same data, float32. Run once:
#                                        # 34.27 / 44.88 dB held out, no change: not shipped
#   bash scripts/long_runs.sh sr_x2_mse_ft  # sr_x2_ft with the mean squared error as the loss
#                                        # (run once: 34.24 / 44.74 dB, worse: not shipped)
#   bash scripts/long_runs.sh sr_x2_detail_ft  # sr_x2_ft with --min-detail 2: most flat crops
#                                        # dropped (run once: 34.28 / 44.86 dB: not shipped)
#   bash scripts/long_runs.sh sr_x2_nonlocal_ft  # sr_x2_ft with a NonLocal2D stage added (run
#                                        # once: 34.27 / 44.88 dB, as sr_x2_ft: adds nothing)
#   bash scripts/long_runs.sh sr_x3      # x3 from the sr_x2 run (upsampler new), 10,000 steps
#   bash scripts/long_runs.sh sr_x4      # x4 likewise
#   bash scripts/long_runs.sh sr_x3_lomiri  # sr_x3's recipe from sr_x2_lomiri on its data
#                                          # (sr_x4_lomiri: x4); shipped until the 60k ones
#   bash scripts/long_runs.sh sr_lomiri_60k_all  # sr_x2_lomiri_60k, then x3 and x4 from it
#                                          # (sr_x3_lomiri_60k, sr_x4_lomiri_60k: sr_x3_lomiri's
#                                          # recipe): the shipped sr_x2, sr_x3 and sr_x4
#   bash scripts/long_runs.sh sr_x4_lr48  # sr_x4's recipe on 192-pixel crops (48 LR pixels, as
#                                        # EDSR trains every scale; sr_x4: 96, 24 LR). Run once:
#                                        # 29.15 / 38.31 dB, shipped 29.11 / 38.34: not shipped.
#                                        # sr_x3_lr48 (x3 on 144-pixel crops), once: 30.94 /
#                                        # 40.85 dB, shipped 30.91 / 40.85: not shipped
#   bash scripts/long_runs.sh sr_x3_30k  # x3 (then sr_x4_30k: x4) fine-tuned 30,000 steps from the
#                                        # shipped sr_x2 (the shipped ones: 10,000)
#   bash scripts/long_runs.sh sr_refs    # the references ESPCN + skip and EDSR-small + skip with
#                                        # sr_x2's data, steps and learning rate (one after the other)
#   bash scripts/long_runs.sh sr_refs_lomiri  # the same on the shipped sr_x2's data (with the
#                                        # lomiri photos)
#   bash scripts/long_runs.sh sr_refs_lomiri_60k  # EDSR-small + skip with the shipped sr_x2's
#                                        # data and 60,000 steps (the equal-steps reference)
#   bash scripts/long_runs.sh classifier_fashion   # classifier_fashion, 30 epochs of Fashion-MNIST
#   bash scripts/long_runs.sh classifier_fashion_500k  # its recipe at 498 K parameters (last
#                                        # stage 96 wide), 40 epochs in bfloat16 (#17's stretch)
#   bash scripts/long_runs.sh classifier_fashion_500k_60  # the same, 60 epochs
#   bash scripts/long_runs.sh aligner_flow   # the dense-flow head on the shipped homography
#                                            # aligner, collection photos, 5,000 steps
#   bash scripts/long_runs.sh aligner_homography   # the first homography aligner fine-tuned
#                                            # on bundled + collection photos, 6,000 steps
#   bash scripts/long_runs.sh aligner_homography_long   # the shipped one, 12,000 steps more
#   bash scripts/long_runs.sh aligner_flow_v2   # the aligner_flow recipe on the homography
#                                            # stage of aligner_homography_long (commit 9429c4c)
#   bash scripts/long_runs.sh aligner_homography_30k   # that one 9,000 steps more: 30,000 in all
#   bash scripts/long_runs.sh aligner_flow_30k   # the aligner_flow recipe on that 30,000-step stage
#
# A run folder (runs/ is not in git) lives on the machine that ran it: a session that starts on a
# new machine starts the run over. To carry an unfinished run across, commit its folder with
# `git add -f runs/NAME` (its backup/ is the whole state: about 1 MB for an aligner run, 7 MB for
# sr_hq) and remove it from git once the run has finished.
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

v1_aligner() {  # the aligner_homography shipped before the collection fine-tune (commit 29fc529),
  # trained by examples/train_aligner.py and scripts/rebuild_aligner.py (see its card in git);
  # both aligner runs below start from it
  local out=runs/aligner_homography_v1.keras
  mkdir -p runs
  [ -s "$out" ] || git show 29fc529:saved_models/aligner_homography/model.keras > "$out"
  echo "$out"
}

shipped_aligner() {  # shipped_aligner COMMIT: saved_models/aligner_homography/model.keras as it
  # was at COMMIT, written once to runs/aligner_homography_COMMIT.keras; prints that path
  local out=runs/aligner_homography_$1.keras
  mkdir -p runs
  [ -s "$out" ] || git show "$1":saved_models/aligner_homography/model.keras > "$out"
  echo "$out"
}

flow_head() {  # flow_head NAME START: the aligner_flow recipe (below) on the frozen stage START
  run "$1" "$BIN/keras-attn" train aligner --model aligner_flow \
    --init-from "$2" --dataset photo_collection \
    --max-shift 16 --deformation 8 --epochs 20 --steps-per-epoch 250 --batch-size 8 \
    --learning-rate 2e-3 --val-pairs-per-image 1 --checkpoint-minutes 10
}

sr_x2_finetune() {  # sr_x2_finetune NAME MODEL INIT [ARGS...]: 10,000 x2 steps of MODEL from the
  # weights in INIT at a fifth of sr_x2's peak learning rate (5e-4), other crops (seed 1); ARGS
  # change the architecture or the loss
  local name=$1 model=$2 init=$3; shift 3
  run "$name" "$BIN/keras-attn" train sr --model "$model" --scale 2 "$@" \
    --init-from "$init" \
    --dataset bundled_photos+photo_collection --epochs 10 --steps-per-epoch 1000 \
    --learning-rate 1e-4 --warmup-steps 100 --seed 1 --checkpoint-minutes 10
}

lomiri_photos() {  # the lomiri photographs' folder, fetched once (scripts/fetch_lomiri_photos.py)
  local photos=${KERAS_ATTN_LOMIRI_PHOTOS:-$HOME/.keras/datasets/keras_attn_lomiri_photos}
  [ -f "$photos/LICENSES.json" ] || "$BIN/python" scripts/fetch_lomiri_photos.py "$photos" >&2
  echo "$photos"
}

fashion_500k() {  # fashion_500k NAME EPOCHS: classifier_fashion's recipe at 498 K parameters
  run "$1" "$BIN/keras-attn" train classifier --model classifier_fashion \
    --widths 32,64,96 --dataset fashion_mnist --image-size 28 --epochs "$2" --batch-size 128 \
    --learning-rate 2e-3 --warmup-steps 500 --weight-decay 0.05 --label-smoothing 0.1 \
    --random-erasing 0.5 --val-split 'train[:5000]' --precision mixed_bfloat16 \
    --checkpoint-minutes 10
}

case "${1:?which run: sr_x2, sr_x2_lomiri, sr_x2_lomiri_60k, sr_x2_bundled, sr_x2_equal, sr_x2_hq, sr_x2_hq_fp32, sr_x2_hq_ft, sr_x2_ft, sr_x2_mse_ft, sr_x2_detail_ft, sr_x2_nonlocal_ft, sr_x3, sr_x4, sr_x3_lomiri, sr_x4_lomiri, sr_x3_lomiri_60k, sr_x4_lomiri_60k, sr_lomiri_60k_all, sr_x3_lr48, sr_x4_lr48, sr_x3_30k, sr_x4_30k, sr_refs, sr_refs_lomiri, sr_refs_lomiri_60k, classifier_fashion, classifier_fashion_500k, classifier_fashion_500k_60, aligner_flow, aligner_homography, aligner_homography_long, aligner_flow_v2, aligner_homography_30k or aligner_flow_30k}" in
  sr_x2)
    run sr_x2_collection "$BIN/keras-attn" train sr --model sr_fast --scale 2 \
      --dataset bundled_photos+photo_collection --epochs 30 --steps-per-epoch 1000 \
      --learning-rate 5e-4 --checkpoint-minutes 10
    ;;
  sr_x2_lomiri)
    # sr_x2's run (30,000 steps from scratch) with 14 more real photographs mixed in by pixels:
    # Debian's lomiri-wallpapers, halved (scripts/fetch_lomiri_photos.py writes the folder once).
    # Tests whether more real photos lift the converged model (fine-tuned on them, 34.28 / 44.93).
    # Run once (4,542 s): 34.32 / 44.97 dB held out against sr_x2_collection's 34.26 / 44.89,
    # and 43.11 / 43.04 on the 4 held-out lomiri photos: shipped as sr_x2.
    photos=$(lomiri_photos)
    run sr_x2_lomiri "$BIN/keras-attn" train sr --model sr_fast --scale 2 \
      --dataset "bundled_photos+photo_collection+folder:$photos" --epochs 30 \
      --steps-per-epoch 1000 --learning-rate 5e-4 --checkpoint-minutes 10
    ;;
  sr_x2_lomiri_60k)
    # sr_x2_lomiri's run (the shipped sr_x2) with twice the steps: 60,000, the cosine schedule
    # stretched over them, everything else the same. From 3,000 to 30,000 steps sr_x2 gained
    # 0.31 dB on the bundled held-out photos, and a 10,000-step fine-tune at a low rate gained
    # 0.01-0.02: this tests whether a longer schedule from scratch still gains (sr_x2 is 0.02 dB
    # short of +2.6 dB over bicubic). About 2.4 h alone. Ship as sr_x2 only if it beats it on
    # the bundled, collection and lomiri held-out photos. Run once (9,035 s by the steps/s
    # column, two sessions): 34.42 / 45.00 / 43.18 dB held out against 34.32 / 44.97 / 43.11
    # (+2.69 dB over bicubic on the bundled photos): shipped as sr_x2.
    photos=$(lomiri_photos)
    run sr_x2_lomiri_60k "$BIN/keras-attn" train sr --model sr_fast --scale 2 \
      --dataset "bundled_photos+photo_collection+folder:$photos" --epochs 60 \
      --steps-per-epoch 1000 --learning-rate 5e-4 --checkpoint-minutes 10
    ;;
  sr_x2_bundled)
    run sr_x2_bundled "$BIN/keras-attn" train sr --model sr_fast --scale 2 \
      --dataset bundled_photos --epochs 30 --steps-per-epoch 1000 \
      --learning-rate 5e-4 --checkpoint-minutes 10
    ;;
  sr_x2_equal)
    # The ablation's best mix at 3,000 steps (docs/benchmarks.md, "Ablation"): the 14 bundled
    # photos drawn as often as the collection's 294 tiles. Ship it as sr_x2 only if it beats the
    # shipped one on both held-out sets.
    run sr_x2_equal "$BIN/keras-attn" train sr --model sr_fast --scale 2 \
      --dataset bundled_photos+photo_collection --mix equal --epochs 30 --steps-per-epoch 1000 \
      --learning-rate 5e-4 --checkpoint-minutes 10
    ;;
  sr_x2_hq)
    # In bfloat16 (weights float32, model.keras float32): 2.4x faster steps on a CPU with AMX.
    # At 3,000 steps of sr_fast it cost 0.10 / 0.17 dB held out against float32
    # (benchmarks/sr_ablation.sh, both_3k_bf16), less than the 2.4x steps it buys.
    run sr_x2_hq "$BIN/keras-attn" train sr --model sr_hq --scale 2 \
      --dataset bundled_photos+photo_collection --epochs 30 --steps-per-epoch 1000 \
      --learning-rate 5e-4 --precision mixed_bfloat16 --checkpoint-minutes 10
    ;;
  sr_x2_hq_fp32)
    # sr_x2_hq's recipe in float32 (about 5 h here, 2.4x its step time): sr_x2_hq ended at
    # 34.07 / 44.85 dB held out, under sr_x2's 34.26 / 44.89; this run separates what bfloat16
    # cost from what the 4x model gains. Ship as sr_x2_hq only if it beats sr_x2 on both sets.
    run sr_x2_hq_fp32 "$BIN/keras-attn" train sr --model sr_hq --scale 2 \
      --dataset bundled_photos+photo_collection --epochs 30 --steps-per-epoch 1000 \
      --learning-rate 5e-4 --checkpoint-minutes 10
    ;;
  sr_x2_hq_ft)
    # sr_x2_hq (bfloat16, 30,000 steps; 34.07 / 44.85 dB held out against sr_x2's 34.26 / 44.89)
    # fine-tuned 10,000 steps more in float32 from its own weights, as sr_x2_ft did for sr_x2
    # (a fifth of the peak learning rate, other crops): a cheaper test than sr_x2_hq_fp32 of
    # whether the 4x model gains from float32 and more steps. About 90 min alone. Needs
    # runs/sr_x2_hq/model.keras (the sr_x2_hq run) until its first epoch is done. Ship as
    # sr_x2_hq only if it beats sr_x2 on both held-out sets. Run once (5,423 s): 34.14 / 44.88 dB
    # held out, below sr_x2: not shipped (docs/benchmarks.md, "sr_hq").
    sr_x2_finetune sr_x2_hq_ft sr_hq runs/sr_x2_hq/model.keras
    ;;
  sr_x2_ft)
    # sr_x2 is 0.07 dB short of +2.6 dB on the bundled held-out photos; its validation tiles had
    # flattened by step 30,000 (46.8 dB). 10,000 more steps from the shipped weights with a
    # fifth of the peak learning rate and other crops (seed 1); ship only if it beats sr_x2 on
    # both held-out sets. Run once: 34.27 / 44.88 dB (shipped 34.26 / 44.89): not shipped.
    sr_x2_finetune sr_x2_ft sr_fast saved_models/sr_x2/model.keras
    ;;
  sr_x2_nonlocal_ft)
    # sr_x2_ft with a NonLocal2D stage after the residual groups (+2,128 parameters; its output
    # projection starts at zero, so step 0 is the shipped sr_x2). Everything else as sr_x2_ft,
    # which is the control: what the attention stage adds over the same 10,000 steps.
    # Run once (4,886 s): 34.27 / 44.88 dB held out, the same as sr_x2_ft: not shipped.
    # Evaluate in tiles (the stage attends over every pixel of its input): python
    # benchmarks/super_resolution.py --scale 2 --dataset bundled_photos --dataset
    # photo_collection --no-speed --tile 128 --model NAME=runs/sr_x2_nonlocal_ft/model.keras
    sr_x2_finetune sr_x2_nonlocal_ft sr_fast saved_models/sr_x2/model.keras --attention nonlocal
    ;;
  sr_x2_mse_ft)
    # sr_x2_ft with the mean squared error in place of Charbonnier (everything else the same;
    # sr_x2_ft, 34.27 / 44.88 dB held out, is the control). PSNR is a mean squared error, and
    # where the low-resolution image leaves the detail open (coffee's aliased table stripes)
    # the squared error's optimum is the mean of what fits, Charbonnier's nearer a median.
    # About 30 min alone. Ship as sr_x2 only if it beats it on both held-out sets. Run once
    # (1,759 s): 34.24 / 44.74 dB held out, coffee 32.95 (sr_x2 33.06): worse, not shipped.
    sr_x2_finetune sr_x2_mse_ft sr_fast saved_models/sr_x2/model.keras --loss mse
    ;;
  sr_x2_detail_ft)
    # sr_x2_ft with --min-detail 2: 71 % of the crops it draws from bundled + collection photos
    # have under 2 levels RMS to restore at x2 (the bundled validation tiles: 13 %, median 8.3),
    # so most of its batches teach flat regions (python benchmarks/sr_crop_detail.py). This run
    # drops those except one in ten (20 % of the kept crops are flat). Everything else as sr_x2_ft (34.27 / 44.88 dB held out), the
    # control. Ship as sr_x2 only if it beats it on both held-out sets. Run once (1,780 s
    # alone): 34.28 / 44.86 dB held out, within 0.03 dB of sr_x2_ft: not shipped.
    sr_x2_finetune sr_x2_detail_ft sr_fast saved_models/sr_x2/model.keras --min-detail 2
    ;;
  sr_x3|sr_x4)
    scale=${1#sr_x}
    run "sr_x${scale}_collection" "$BIN/keras-attn" train sr --model sr_fast --scale "$scale" \
      --init-from runs/sr_x2_collection/model.keras \
      --dataset bundled_photos+photo_collection --epochs 10 --steps-per-epoch 1000 \
      --learning-rate 3e-4 --warmup-steps 100 --checkpoint-minutes 10
    ;;
  sr_x3_lomiri|sr_x4_lomiri)
    # sr_x3 / sr_x4's recipe (10,000 steps from the x2 weights) from sr_x2_lomiri, on its data
    scale=${1#sr_x}; scale=${scale%_lomiri}
    photos=$(lomiri_photos)
    run "sr_x${scale}_lomiri" "$BIN/keras-attn" train sr --model sr_fast --scale "$scale" \
      --init-from runs/sr_x2_lomiri/model.keras \
      --dataset "bundled_photos+photo_collection+folder:$photos" --epochs 10 \
      --steps-per-epoch 1000 --learning-rate 3e-4 --warmup-steps 100 --checkpoint-minutes 10
    ;;
  sr_x3_lomiri_60k|sr_x4_lomiri_60k)
    # sr_x3_lomiri / sr_x4_lomiri's recipe (10,000 steps from the x2 weights, on the same data)
    # from sr_x2_lomiri_60k instead of sr_x2_lomiri. Ship each only if it beats the shipped one
    # on the bundled, collection and lomiri held-out photos. sr_x3_lomiri_60k ran once (982 s):
    # 31.07 / 40.97 / 38.84 dB held out against sr_x3_lomiri's 30.98 / 40.93 / 38.80: shipped;
    # sr_x4_lomiri_60k once (673 s): 29.24 / 38.51 / 36.25 against 29.17 / 38.46 / 36.18: shipped.
    scale=${1#sr_x}; scale=${scale%_lomiri_60k}
    photos=$(lomiri_photos)
    [ -s runs/sr_x2_lomiri_60k/model.keras ] || { echo "run sr_x2_lomiri_60k first" >&2; exit 1; }
    run "sr_x${scale}_lomiri_60k" "$BIN/keras-attn" train sr --model sr_fast --scale "$scale" \
      --init-from runs/sr_x2_lomiri_60k/model.keras \
      --dataset "bundled_photos+photo_collection+folder:$photos" --epochs 10 \
      --steps-per-epoch 1000 --learning-rate 3e-4 --warmup-steps 100 --checkpoint-minutes 10
    ;;
  sr_lomiri_60k_all)
    # sr_x2_lomiri_60k, then sr_x3_lomiri_60k, then sr_x4_lomiri_60k, one after the other; a
    # finished run is skipped, so rerunning this resumes wherever the chain stopped
    for name in sr_x2_lomiri_60k sr_x3_lomiri_60k sr_x4_lomiri_60k; do
      bash "$0" "$name"
    done
    ;;
  sr_x3_lr48|sr_x4_lr48)
    # The shipped x3 / x4 recipe (sr_x3 / sr_x4 above: 10,000 steps from sr_x2's weights) with
    # one change: HR crops of 48 LR pixels a side (144 at x3, 192 at x4), EDSR's training patch
    # at every scale, where the shipped ones cut 96-pixel HR crops at every scale (32 / 24 LR
    # pixels: at x4, 44 % of each LR crop is within 3 pixels of an edge, where the zero
    # padding of the convolutions shows; 23 % at 48). About 4x / 2.3x the pixels per step. Ship each only
    # if it beats the shipped one on both held-out sets. sr_x4_lr48 ran once (2,094 s alone):
    # 29.15 / 38.31 dB held out (shipped 29.11 / 38.34): not shipped; sr_x3_lr48 ran once
    # (1,659 s): 30.94 / 40.85 dB (shipped 30.91 / 40.85): not shipped.
    scale=${1:4:1}
    run "sr_x${scale}_lr48" "$BIN/keras-attn" train sr --model sr_fast --scale "$scale" \
      --patch-size $((48 * scale)) --init-from saved_models/sr_x2/model.keras \
      --dataset bundled_photos+photo_collection --epochs 10 --steps-per-epoch 1000 \
      --learning-rate 3e-4 --warmup-steps 100 --checkpoint-minutes 10
    ;;
  sr_x3_30k|sr_x4_30k)
    # x3 / x4 fine-tuned 30,000 steps (3x the shipped 10,000) from the shipped sr_x2, the same
    # recipe otherwise; ship each only if it beats the shipped one on both held-out sets. Run
    # once: x3 30.98 / 40.83 dB, x4 29.18 / 38.28 (shipped 30.91 / 40.85, 29.11 / 38.34): not
    # shipped (docs/benchmarks.md, "Super-resolution").
    scale=${1:4:1}
    run "sr_x${scale}_30k" "$BIN/keras-attn" train sr --model sr_fast --scale "$scale" \
      --init-from saved_models/sr_x2/model.keras \
      --dataset bundled_photos+photo_collection --epochs 30 --steps-per-epoch 1000 \
      --learning-rate 3e-4 --warmup-steps 100 --checkpoint-minutes 10
    ;;
  sr_refs)
    # MODELS="edsr_small_skip" runs one of them (ESPCN + skip ran once: 33.81 / 44.40 dB held out)
    # (EDSR-small + skip ran once: 34.09 / 44.77 dB held out; sr_x2: 34.26 / 44.89)
    for model in ${MODELS:-espcn_skip edsr_small_skip}; do
      run "sr_refs_${model}_x2" "$BIN/keras-attn" train sr --model "$model" --scale 2 \
        --dataset bundled_photos+photo_collection --epochs 30 --steps-per-epoch 1000 \
        --learning-rate 5e-4 --checkpoint-minutes 10
    done
    ;;
  sr_refs_lomiri)
    # sr_refs on the shipped sr_x2's data (bundled + collection + the lomiri photos), so the
    # references and sr_x2 (sr_x2_lomiri) are compared at equal data and steps again.
    # MODELS="edsr_small_skip" runs one of them. EDSR-small + skip ran once (5,741 s): 34.17 /
    # 44.81 / 42.93 dB on the bundled / collection / lomiri held-out photos (sr_x2_lomiri, the
    # same steps: 34.32 / 44.97 / 43.11). ESPCN + skip: not run yet.
    photos=$(lomiri_photos)
    for model in ${MODELS:-espcn_skip edsr_small_skip}; do
      run "sr_refs_lomiri_${model}_x2" "$BIN/keras-attn" train sr --model "$model" --scale 2 \
        --dataset "bundled_photos+photo_collection+folder:$photos" --epochs 30 \
        --steps-per-epoch 1000 --learning-rate 5e-4 --checkpoint-minutes 10
    done
    ;;
  sr_refs_lomiri_60k)
    # EDSR-small + skip with the shipped sr_x2's exact data, steps and learning rate (60,000
    # steps, sr_x2_lomiri_60k's recipe): the reference at equal steps for the shipped sr_x2
    # (34.42 / 45.00 / 43.18 dB held out). About 2.5 h alone (7 steps/s).
    photos=$(lomiri_photos)
    run sr_refs_lomiri_60k_edsr_small_skip_x2 "$BIN/keras-attn" train sr --model edsr_small_skip \
      --scale 2 --dataset "bundled_photos+photo_collection+folder:$photos" --epochs 60 \
      --steps-per-epoch 1000 --learning-rate 5e-4 --checkpoint-minutes 10
    ;;
  classifier_fashion)
    # The first shipped classifier_fashion (widths 32, 64, 128: 720,346 parameters; 94.98 % on
    # the test split), replaced by classifier_fashion_500k_60 below; the preset's widths are now
    # that model's (32, 64, 96), so this recipe names its own. Validation during training on
    # 5,000 training images (unaugmented): the test split is read once, by the final evaluation.
    run classifier_fashion "$BIN/keras-attn" train classifier --model classifier_fashion \
      --widths 32,64,128 \
      --dataset fashion_mnist --image-size 28 --epochs 30 --batch-size 128 \
      --learning-rate 2e-3 --warmup-steps 500 --weight-decay 0.05 --label-smoothing 0.1 \
      --random-erasing 0.5 --val-split 'train[:5000]' --checkpoint-minutes 10
    ;;
  classifier_fashion_500k)
    # The stretch target: >= 95.0 % at <= 500 K parameters. classifier_fashion's recipe with the
    # last stage 96 wide instead of 128 (498,122 parameters, 87 % of the MACs), 40 epochs
    # instead of 30, in bfloat16 (about 1.9x faster a step here; model.keras computes in float32).
    # Run once (three sessions): 94.89 % on the test split, under the 94.98 % shipped then: not shipped.
    fashion_500k classifier_fashion_500k 40
    ;;
  classifier_fashion_500k_60)
    # classifier_fashion_500k 1.5x longer (60 epochs; its 40 ended at 94.89 %, 0.11 points
    # short, with training accuracy 95.8 % under augmentation: not over-fit). Run once (four
    # sessions, 9,366 s by its steps/s): 95.51 % on the test split (449 errors) with 498,122
    # parameters: shipped as classifier_fashion (the exact command is in its card).
    fashion_500k classifier_fashion_500k_60 60
    ;;
  aligner_flow)
    # Only the flow head trains (the homography stage is the first aligner_homography's, frozen), on
    # pairs with a random non-planar residual of up to 8 px. The collection photos only: the
    # bundled ones include the stereo pair of benchmarks/stereo_flow.py. Corner shifts of
    # 16 px, not 32: the frozen stage fails on a third of the collection's rho-32 pairs, and a
    # pair whose homography is tens of pixels off teaches the head nothing.
    flow_head aligner_flow "$(v1_aligner)"
    ;;
  aligner_flow_v2)
    # The aligner_flow recipe above, step for step, on a better frozen stage: the aligner_homography
    # shipped in commit 9429c4c (21,000 steps; stereo pair 2.26 px halved, 5.02 full size, against
    # 2.71 / 6.80 for the stage of the first aligner_flow). Only the stage changes, so the two
    # runs compare directly. About 40 minutes.
    flow_head aligner_flow_v2 "$(shipped_aligner 9429c4c)"
    ;;
  aligner_flow_30k)
    # The aligner_flow_v2 recipe on the stage of the 30,000-step aligner_homography (commit
    # e38d75e). Not run yet; about 40 minutes. Ship it only if it beats the shipped aligner_flow
    # on held-out pairs (the card's flow EPE, the collection tiles, benchmarks/stereo_flow.py).
    flow_head aligner_flow_30k "$(shipped_aligner e38d75e)"
    ;;
  aligner_homography_30k)
    # The aligner_homography of commit 9429c4c (21,000 steps) trained 9,000 more on the same
    # data at half the previous peak learning rate: 30,000 steps in all, 10x the first run (the
    # aligner issue's ask). Sized to finish inside one session (about 80 minutes).
    run aligner_homography_30k "$BIN/keras-attn" train aligner --model aligner_homography \
      --init-from "$(shipped_aligner 9429c4c)" \
      --dataset bundled_photos+photo_collection --epochs 36 --steps-per-epoch 250 \
      --batch-size 8 --learning-rate 1.25e-4 --val-pairs-per-image 2 --checkpoint-minutes 10
    ;;
  aligner_homography)
    # The first aligner (3,000 steps on the 14 bundled photos) failed on 38 % of the
    # collection's rho-32 validation pairs: smooth photos (sky, sand, water) its features never
    # saw. The whole network fine-tunes on both sets at rho 32, twice its original steps.
    run aligner_homography_collection "$BIN/keras-attn" train aligner --model aligner_homography \
      --init-from "$(v1_aligner)" \
      --dataset bundled_photos+photo_collection --epochs 24 --steps-per-epoch 250 \
      --batch-size 8 --learning-rate 5e-4 --val-pairs-per-image 2 --checkpoint-minutes 10
    ;;
  aligner_homography_long)
    # The aligner_homography of commit d1ec489 (9,000 steps) trained 12,000 more on the same data at
    # half its peak learning rate: 21,000 steps in all, toward the 30,000 (10x the first run) of
    # the aligner issue. Sized to finish inside one session (103 minutes in session 15, sharing
    # the cores with tests and benchmarks): a run folder does not outlive its machine.
    # (the run of session 15 read --init-from saved_models/aligner_homography/model.keras, which
    # was this file then)
    run aligner_homography_long "$BIN/keras-attn" train aligner --model aligner_homography \
      --init-from "$(shipped_aligner d1ec489)" \
      --dataset bundled_photos+photo_collection --epochs 48 --steps-per-epoch 250 \
      --batch-size 8 --learning-rate 2.5e-4 --val-pairs-per-image 2 --checkpoint-minutes 10
    ;;
  *) echo "unknown run: $1" >&2; exit 2 ;;
esac

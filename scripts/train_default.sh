#!/usr/bin/env bash
# Reproduce the shipped default model (`make train-default`). Many hours on 2 cores;
# run it again after any stop and it continues where it stopped.
#   1. simulate the training set (seed 1) and the validation set (seed 2), 512 px, and
#      refuse files of another simulator version;
#   2. train uresnet alone (stage 1), fine-tune it with heavier Delta and Michel class
#      weights (stage uresnet_balance: the rare classes' voxel accuracy against the common
#      ones', chosen in BENCHMARKS.md, "Class weights"), fine-tune that again with the
#      Delta and Michel voxels outside their particle's main piece weighted x4 at a
#      constant rate (stage uresnet_dots: BENCHMARKS.md, "Weighing the detached voxels";
#      one process, as the shipped stage was trained), and train SPICE alone on the true
#      classes (stage 2), each in its own run directory, two processes (torchrun, gloo,
#      one OpenMP thread each; uresnet_dots: DOTS_NPROC, default 1);
#      a stage resumes from its run directory, or, when that is gone (a fresh machine),
#      restarts from its committed weights in weights/run/ (train --restart-from: the
#      schedule continues, Adam's moments restart with a short warm-up);
#   3. export each stage's latest weights to weights/run/ (float16, with the iteration,
#      event passes, simulator version and config; weights/run/README.md logs each stretch);
#   4. when all four stages are complete (and FINAL=1): average uresnet_dots's checkpoints
#      from DOTS_AVERAGE_FROM to DOTS_ITERATIONS and SPICE's from SPICE_AVERAGE_FROM to
#      SPICE_ITERATIONS (mlreco-spice average: stochastic weight averaging, batch-norm
#      statistics recomputed on 200 training events), join the two means into
#      weights/spice_default.pt (chain_configs/predict.yaml adds its logit_offsets, chosen
#      on the validation events: BENCHMARKS.md, "A small offset instead of the maximin")
#      and tune the clustering thresholds on
#      the validation set (the shipped clusterer,
#      every candidate step on for benchmarks/clusterer_steps.py, and the paper's seed
#      search alone for the accuracy benchmark).
# Seeds 3 (accuracy benchmark test set), 4 (the selection events that chose the class
# weights) and 20201231 (make demo) are never used here.
#
# Settings (environment): DATA, RUN (run directories; keep RUN outside the work tree for
# a long run), N_TRAIN, N_VAL, NPROC, URESNET_ITERATIONS, BALANCE_ITERATIONS (the
# fine-tuning's length; it starts from uresnet's last checkpoint at lr 5e-4, cosine to
# 1e-5, seed 7), BALANCE_WEIGHTS (its class weights, kept by uresnet_dots),
# DOTS_ITERATIONS (uresnet_dots's length; it starts from weights/run/uresnet_balance.pt
# at a constant 2.5e-4, seed 11), DOTS_WEIGHT (its per-class weights of the detached
# voxels), DOTS_NPROC (its processes, default 1), DOTS_AVERAGE_FROM (its first averaged
# iteration; checkpoints every DOTS_EVERY from there are kept), SPICE_ITERATIONS,
# SPICE_FREEZE (iterations with the seediness branch frozen), SPICE_AVERAGE_FROM (first
# SPICE iteration averaged; its checkpoints every CHECKPOINT_EVERY from there are kept in
# the run directory, train.keep_grid_from; empty: no averaging, the last checkpoint is
# joined), FINAL (0: stop after 3),
# CHECKPOINT_MINUTES (also checkpoint every N minutes of wall time, default 10),
# CHECKPOINT_EVERY (iterations between checkpoints, default 400; the averaging grid),
# STAGES (the stages trained by this call, default "uresnet uresnet_balance uresnet_dots
# spice", in that order; e.g. STAGES=uresnet trains and exports stage 1 only, and FINAL is
# then ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DATA:-runs/default_data}
RUN=${RUN:-runs/default}
N_TRAIN=${N_TRAIN:-10000}
N_VAL=${N_VAL:-200}
NPROC=${NPROC:-2}
# Iterations of NPROC processes x io.loader.batch_size (1) events: 15,000 (uresnet), 3,000
# (its fine-tuning) and 60,000 (SPICE) event passes with the default two processes.
URESNET_ITERATIONS=${URESNET_ITERATIONS:-7500}
BALANCE_ITERATIONS=${BALANCE_ITERATIONS:-1500}
BALANCE_WEIGHTS=${BALANCE_WEIGHTS:-"{Delta: 15.0, Michel: 25.0}"}
# 15,000 event passes with one process; the mean of 9,000-15,000 is the shipped uresnet.
DOTS_ITERATIONS=${DOTS_ITERATIONS:-15000}
DOTS_NPROC=${DOTS_NPROC:-1}
DOTS_WEIGHT=${DOTS_WEIGHT:-"[1.0, 1.0, 1.0, 4.0, 4.0]"}
DOTS_AVERAGE_FROM=${DOTS_AVERAGE_FROM:-9000}
DOTS_EVERY=${DOTS_EVERY:-500}
SPICE_ITERATIONS=${SPICE_ITERATIONS:-30000}
SPICE_AVERAGE_FROM=${SPICE_AVERAGE_FROM-22000}
SPICE_FREEZE=${SPICE_FREEZE:-4000}
FINAL=${FINAL:-1}
ALL_STAGES="uresnet uresnet_balance uresnet_dots spice"
STAGES=${STAGES:-$ALL_STAGES}
CHECKPOINT_MINUTES=${CHECKPOINT_MINUTES:-10}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-400}
EXPORT=weights/run
mkdir -p "$DATA" "$RUN"
DATA=$(realpath "$DATA")
RUN=$(realpath "$RUN")
[ -f "$DATA/train.h5" ] || $BIN/mlreco-spice simulate -o "$DATA/train.h5" -n "$N_TRAIN" --seed 1
[ -f "$DATA/val.h5" ]   || $BIN/mlreco-spice simulate -o "$DATA/val.h5" -n "$N_VAL" --seed 2
# Files left by an older simulator version (or made with other seeds or sizes) would train
# on other events: stop, naming both (delete them to re-simulate).
$BIN/python -m mlreco_spice.sim.check_files "$DATA/train.h5" --seed 1 --size 512 --events "$N_TRAIN"
$BIN/python -m mlreco_spice.sim.check_files "$DATA/val.h5" --seed 2 --size 512 --events "$N_VAL"

stage() {  # [STAGE_NPROC=N] stage NAME CONFIG ITERATIONS [--set ...]
  local name=$1 config=$2 iterations=$3 dir="$RUN/$1" start=() nproc=${STAGE_NPROC:-$NPROC}
  shift 3
  if ls "$dir"/checkpoint-*.pt >/dev/null 2>&1; then
    start=(--resume)
  else
    # A run stopped before its first checkpoint left only its log: start it again.
    [ -f "$dir/train_log.csv" ] && start=(--overwrite)
    if [ -f "$EXPORT/$name.pt" ]; then
      echo "[train-default] $dir holds no checkpoint: restarting $name from $EXPORT/$name.pt"
      start+=(--restart-from "$EXPORT/$name.pt")
    fi
  fi
  OMP_NUM_THREADS=1 $BIN/torchrun --nproc_per_node "$nproc" -m mlreco_spice train -c "$config" \
      --set "io.dataset.files=[$DATA/train.h5]" --set "train.output_dir=$dir" \
      --set "train.iterations=$iterations" --set "train.checkpoint_minutes=$CHECKPOINT_MINUTES" \
      --set "train.checkpoint_every=$CHECKPOINT_EVERY" \
      "$@" "${start[@]}"
  $BIN/python scripts/export_run.py "$dir" --stage "$name" --out "$EXPORT" --world "$nproc"
}

iteration_of() {  # the iteration a checkpoint or export records
  $BIN/python -c 'import sys; from mlreco_spice.checkpoint import load_checkpoint; print(int(load_checkpoint(sys.argv[1]).get("iteration") or 0))' "$1"
}

for name in $STAGES; do
  case $name in
    uresnet) stage uresnet chain_configs/uresnet_train.yaml "$URESNET_ITERATIONS" ;;
    uresnet_balance)
      # Starts from the finished uresnet stage: its last checkpoint, or, on a machine
      # without the run directory, its float16 export (then not bit for bit the shipped
      # start, which was checkpoint 7,500 in float32); a resumed or restarted fine-tuning
      # loads its own state over it.
      start=$(ls "$RUN/uresnet"/checkpoint-*.pt 2>/dev/null | sort | tail -n 1 || true)
      start=${start:-$EXPORT/uresnet.pt}
      [ -f "$start" ] || { echo "[train-default] uresnet_balance needs the uresnet stage first" \
                                "($RUN/uresnet or $EXPORT/uresnet.pt)" >&2; exit 1; }
      done_at=$(iteration_of "$start")
      [ "$done_at" = "$URESNET_ITERATIONS" ] || { echo "[train-default] uresnet_balance: $start is" \
          "uresnet at iteration $done_at, not the finished stage ($URESNET_ITERATIONS): train uresnet first" >&2; exit 1; }
      # A committed fine-tuning of another uresnet (weights/run/uresnet.* deleted to retrain
      # the stage, uresnet_balance.* kept) would be restarted as if it were this one's.
      if [ -f "$EXPORT/uresnet_balance.yaml" ] && [ "$start" != "$EXPORT/uresnet.pt" ] \
          && ! ls "$RUN/uresnet_balance"/checkpoint-*.pt >/dev/null 2>&1; then
        tuned=$($BIN/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["config"]["model"]["modules"]["uresnet"]["weights"])' "$EXPORT/uresnet_balance.yaml")
        [ "$(realpath -m "$tuned")" = "$(realpath -m "$start")" ] || { echo "[train-default]" \
            "$EXPORT/uresnet_balance.pt fine-tuned $tuned, not $start: delete" \
            "$EXPORT/uresnet_balance.* to fine-tune this uresnet" >&2; exit 1; }
      fi
      stage uresnet_balance chain_configs/uresnet_train.yaml "$BALANCE_ITERATIONS" \
          --set "model.modules.uresnet.weights=$start" --set train.optimizer.lr=0.0005 \
          --set "train.lr_schedule={name: cosine, min_lr: 1.0e-5}" --set train.seed=7 \
          --set "model.modules.uresnet.loss.class_weights=$BALANCE_WEIGHTS" ;;
    uresnet_dots)
      # Starts from the fine-tuning's float16 export, as the shipped stage did. A committed
      # uresnet_dots of another fine-tuning (uresnet_balance retrained, uresnet_dots.* kept)
      # would be restarted as if it were this one's: delete weights/run/uresnet_dots*.
      start=$EXPORT/uresnet_balance.pt
      [ -f "$start" ] && [ "$(iteration_of "$start")" = "$BALANCE_ITERATIONS" ] || {
          echo "[train-default] uresnet_dots needs the finished uresnet_balance stage" \
               "($start at iteration $BALANCE_ITERATIONS): train uresnet_balance first" >&2; exit 1; }
      STAGE_NPROC=$DOTS_NPROC stage uresnet_dots chain_configs/uresnet_train.yaml "$DOTS_ITERATIONS" \
          --set "model.modules.uresnet.weights=$start" --set train.optimizer.lr=0.00025 \
          --set train.lr_schedule=null --set train.seed=11 \
          --set "io.dataset.schema.clust_label={parser: cluster3d, cluster_product: cluster3d_pcluster, semantics_product: sparse3d_semantics}" \
          --set "model.modules.uresnet.loss_input={seg_label: seg_label, clust_label: clust_label}" \
          --set "model.modules.uresnet.loss={class_weights: $BALANCE_WEIGHTS, detached_weight: $DOTS_WEIGHT}" \
          --set "train.checkpoint_every=$DOTS_EVERY" --set "train.keep_grid_from=$DOTS_AVERAGE_FROM" ;;
    spice) stage spice chain_configs/spice_stage_train.yaml "$SPICE_ITERATIONS" \
               --set "train.freeze_seediness_iterations=$SPICE_FREEZE" \
               --set "train.keep_grid_from=${SPICE_AVERAGE_FROM:-null}" ;;
    *) echo "[train-default] STAGES: unknown stage '$name' ($ALL_STAGES)" >&2; exit 2 ;;
  esac
done
[ "$STAGES" = "$ALL_STAGES" ] || { echo "[train-default] STAGES=$STAGES: stage weights in $EXPORT/, default untouched"; exit 0; }
[ "$FINAL" = 1 ] || { echo "[train-default] FINAL=$FINAL: stage weights in $EXPORT/, default untouched"; exit 0; }

# The mean of SPICE's checkpoints from SPICE_AVERAGE_FROM on (they stay in the run
# directory; a run directory lost mid-run lacks the early ones: then set SPICE_AVERAGE_FROM
# after the restart). The file is named spice.pt: --combine takes the stage from the stem.
SPICE_WEIGHTS=$EXPORT/spice.pt
if [ -n "$SPICE_AVERAGE_FROM" ]; then
  if ! ls "$RUN/spice"/checkpoint-*.pt >/dev/null 2>&1; then
    echo "[train-default] $RUN/spice holds no SPICE checkpoint to average (a fresh machine," \
         "the stage restored from $EXPORT/spice.pt): the average needs the run directory's" \
         "checkpoints from iteration $SPICE_AVERAGE_FROM on. weights/spice_default.pt is" \
         "left as it is; SPICE_AVERAGE_FROM= (empty) joins $EXPORT/spice.pt unaveraged." >&2
    exit 1
  fi
  mkdir -p "$RUN/spice_average"
  SPICE_WEIGHTS=$RUN/spice_average/spice.pt
  $BIN/mlreco-spice average "$RUN/spice" --first "$SPICE_AVERAGE_FROM" --last "$SPICE_ITERATIONS" \
      --every "$CHECKPOINT_EVERY" --bn-events 200 --bn-files "$DATA/train.h5" \
      -o "$SPICE_WEIGHTS" --overwrite -q
fi
# The mean of uresnet_dots's checkpoints from DOTS_AVERAGE_FROM on, exported in float16 as
# weights/run/uresnet_dots_mean.pt; on a machine without them (the stage restored from its
# committed export) the committed mean is joined as it is.
DOTS_MEAN=$EXPORT/uresnet_dots_mean.pt
if ls "$RUN/uresnet_dots"/checkpoint-*.pt >/dev/null 2>&1; then
  first=$RUN/uresnet_dots/checkpoint-$(printf %07d "$DOTS_AVERAGE_FROM").pt
  [ -f "$first" ] || { echo "[train-default] $first is missing (the run directory was lost" \
      "mid-stage and the stage restarted after it): the mean of uresnet_dots needs its" \
      "checkpoints from $DOTS_AVERAGE_FROM on; set DOTS_AVERAGE_FROM after the restart." \
      "weights/spice_default.pt is left as it is." >&2; exit 1; }
  mkdir -p "$RUN/uresnet_dots_average"
  $BIN/mlreco-spice average "$RUN/uresnet_dots" --first "$DOTS_AVERAGE_FROM" --last "$DOTS_ITERATIONS" \
      --every "$DOTS_EVERY" --bn-events 200 --bn-files "$DATA/train.h5" \
      -o "$RUN/uresnet_dots_average/uresnet.pt" --overwrite -q
  # Float16 weights, and their record beside them (the committed one described the shipped mean).
  $BIN/python -c 'import sys, yaml
from mlreco_spice.atomic import atomic_write_text
from mlreco_spice.checkpoint import export_weights
mean, out, first, last, every, stage_record = sys.argv[1:7]
export_weights(mean, out, half=True)
record = {"stage": "uresnet_dots_mean",
          "what": f"mean of the stage uresnet_dots checkpoints at iterations {first} to {last} every "
                  f"{every}, batch-norm statistics recomputed over 200 training events "
                  "(mlreco-spice average), stored in float16",
          "simulator": (yaml.safe_load(open(stage_record)) or {}).get("simulator"),
          "use": "chain_configs/predict.yaml adds network.logit_offsets {Michel: 0.3}"}
atomic_write_text(out[:-len(".pt")] + ".yaml",
                  "# written by scripts/train_default.sh\n" + yaml.safe_dump(record, sort_keys=False))' \
      "$RUN/uresnet_dots_average/uresnet.pt" "$DOTS_MEAN" "$DOTS_AVERAGE_FROM" "$DOTS_ITERATIONS" \
      "$DOTS_EVERY" "$EXPORT/uresnet_dots.yaml"
elif [ -f "$DOTS_MEAN" ]; then
  echo "[train-default] $RUN/uresnet_dots holds no checkpoint to average: joining the committed $DOTS_MEAN"
else
  echo "[train-default] neither $RUN/uresnet_dots's checkpoints nor $DOTS_MEAN: nothing to join" >&2
  exit 1
fi
$BIN/python scripts/export_run.py --combine "uresnet=$DOTS_MEAN" "$SPICE_WEIGHTS" \
    -c chain_configs/predict.yaml -o weights/spice_default.pt
LABELS="io.dataset.schema.clust_label={parser: cluster3d, cluster_product: cluster3d_pcluster, semantics_product: sparse3d_semantics}"
# The shipped clusterer (predict.yaml: the paper's seed search and the steps that pass issue 18's
# keep-step rule; none on the shipped model),
# then every candidate step on (predict_all_steps.yaml: what benchmarks/clusterer_steps.py
# judges, with its connect_p and absorb_p).
for config in predict:thresholds predict_all_steps:thresholds_all_steps; do
  $BIN/mlreco-spice tune -c "chain_configs/${config%%:*}.yaml" -i "$DATA/val.h5" \
      -o "weights/${config##*:}.yaml" --weights weights/spice_default.pt --events "$N_VAL" \
      --set predict.thresholds=null --set "$LABELS"
done
# The paper's seed search alone (at least one seed per class, leftovers assigned, no later
# step: benchmarks/race_common.py SEED_SEARCH), for the accuracy benchmark's spice_paper_seeds row.
$BIN/mlreco-spice tune -c chain_configs/predict.yaml -i "$DATA/val.h5" -o weights/thresholds_paper.yaml \
    --weights weights/spice_default.pt --events "$N_VAL" --set predict.thresholds=null --set "$LABELS" \
    --set model.modules.spice.clusterer.at_least_one_seed=true --set model.modules.spice.clusterer.refine_iterations=0 \
    --set model.modules.spice.clusterer.merge_p=null --set model.modules.spice.clusterer.connect_radius_cm=null \
    --set model.modules.spice.clusterer.absorb_radius_cm=null \
    --set model.modules.spice.clusterer.connect_max_bend=null \
    --set model.modules.spice.clusterer.reconnect_after_absorb=false
echo "default model written to weights/ (stages from $EXPORT/)"

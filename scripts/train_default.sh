#!/usr/bin/env bash
# Reproduce the shipped default model (`make train-default`):
#   1. simulate the training set (seed 1) and the validation set (seed 2), 512 px;
#   2. train uresnet + SPICE with chain_configs/spice_train.yaml, two processes
#      (torchrun, gloo, one OpenMP thread each: the fastest way to use both
#      cores, see the config's comments);
#   3. tune the clustering thresholds on the validation set (shipped clusterer, and the
#      paper's seed search alone for the accuracy benchmark);
#   4. export the weights and thresholds to weights/.
# Seeds 3 (accuracy benchmark test set) and 20201231 (make demo) are never used here.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DATA:-runs/default_data}
N_TRAIN=${N_TRAIN:-3200}
NPROC=${NPROC:-2}
N_VAL=${N_VAL:-100}
mkdir -p "$DATA"
[ -f "$DATA/train.h5" ] || $BIN/mlreco-spice simulate -o "$DATA/train.h5" -n "$N_TRAIN" --seed 1
[ -f "$DATA/val.h5" ]   || $BIN/mlreco-spice simulate -o "$DATA/val.h5" -n "$N_VAL" --seed 2
# Files left by an older simulator version would train on events that no longer exist:
# stop, naming both versions (delete them to re-simulate).
$BIN/python -m mlreco_spice.sim.version "$DATA/train.h5" "$DATA/val.h5"
RESUME=""
ls runs/spice_train/checkpoint-*.pt >/dev/null 2>&1 && RESUME="--resume"
OMP_NUM_THREADS=1 $BIN/torchrun --nproc_per_node "$NPROC" -m mlreco_spice train -c chain_configs/spice_train.yaml \
    --set "io.dataset.files=[$PWD/$DATA/train.h5]" $RESUME "$@"
LAST=$(ls runs/spice_train/checkpoint-*.pt | sort | tail -1)
$BIN/python -c "import sys; from mlreco_spice.checkpoint import export_weights; export_weights(sys.argv[1], sys.argv[2], half=True)" \
    "$LAST" weights/spice_default.pt
$BIN/mlreco-spice tune -c chain_configs/predict.yaml -i "$DATA/val.h5" -o weights/thresholds.yaml \
    --weights weights/spice_default.pt --events "$N_VAL" --set predict.thresholds=null \
    --set "io.dataset.schema.clust_label={parser: cluster3d, cluster_product: cluster3d_pcluster, semantics_product: sparse3d_semantics}"
# The paper's seed search alone, for the accuracy benchmark's spice_paper_seeds row.
$BIN/mlreco-spice tune -c chain_configs/predict.yaml -i "$DATA/val.h5" -o weights/thresholds_paper.yaml \
    --weights weights/spice_default.pt --events "$N_VAL" --set predict.thresholds=null \
    --set "io.dataset.schema.clust_label={parser: cluster3d, cluster_product: cluster3d_pcluster, semantics_product: sparse3d_semantics}" \
    --set model.modules.spice.clusterer.at_least_one_seed=false --set model.modules.spice.clusterer.refine_iterations=0 \
    --set model.modules.spice.clusterer.merge_p=null --set model.modules.spice.clusterer.connect_radius=null \
    --set model.modules.spice.clusterer.absorb_radius=null \
    --set model.modules.spice.clusterer.connect_max_bend=null \
    --set model.modules.spice.clusterer.reconnect_after_absorb=false
cp runs/spice_train/train_log.csv weights/train_log.csv
echo "default model written to weights/ (from $LAST)"

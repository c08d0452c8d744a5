#!/usr/bin/env bash
# Build a TFDS dataset with Apache Beam (python -m gzevo_jax.data.build):
# locally on WORKERS processes by default, or on any Beam runner (Dataflow,
# Flink, Spark) through BEAM_OPTIONS. Needs the [beam] extra:
# pip install -e '.[beam]'.
#
#   DATASET=gz_evo/real MANUAL_DIR=~/gz_evo_download launch/build_dataset.sh
#   DATASET=gz_evo/synthetic_large WORKERS=16 launch/build_dataset.sh
#   DATASET=gz_evo/synthetic_large DATA_DIR=gs://BUCKET/tensorflow_datasets \
#   BEAM_OPTIONS=runner=DataflowRunner,project=PROJECT,region=us-central1,temp_location=gs://BUCKET/tmp,setup_file=./setup.py \
#   launch/build_dataset.sh
#
# Required: DATASET (e.g. gz_evo/real, gz_rings/real, gz_evo/synthetic_large);
# MANUAL_DIR for real datasets (the directory holding your download).
# Optional:
#   DATA_DIR       where the dataset is written (default: $TFDS_DATA_DIR or
#                  ~/tensorflow_datasets); must be gs://... on Dataflow
#   WORKERS        local Beam worker processes (default: the CPU count)
#   BEAM_OPTIONS   Beam pipeline options, comma-separated, replacing the
#                  default runner=DirectRunner,direct_num_workers=WORKERS,
#                  direct_running_mode=multi_processing (DirectRunner runs
#                  as Beam's local FnApiRunner, with no download)
#   SKIP_BAD_ROWS=1  skip and report bad catalogue rows instead of failing
#   DRY_RUN=1      print the command without running it
# Arguments are passed on to python -m gzevo_jax.data.build. The command runs
# in the repository root, so setup_file=./setup.py names this package.
set -euo pipefail
LAUNCH_NAME=launch/build_dataset.sh
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=launch/common.sh
source "${here}/common.sh"
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then usage "$0"; exit 0; fi
required=('DATASET|name/config, e.g. DATASET=gz_evo/real or gz_evo/synthetic_large')
if [[ "${DATASET:-}" == */real* ]]; then
  required+=('MANUAL_DIR|the directory holding the downloaded catalogues and images')
fi
require_vars "${required[@]}"

if [[ -z "${BEAM_OPTIONS:-}" ]]; then
  workers="${WORKERS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}"
  if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]]; then
    die "WORKERS must be a positive integer (got '${workers}')"
  fi
  BEAM_OPTIONS="runner=DirectRunner,direct_num_workers=${workers}"
  if (( workers > 1 )); then
    BEAM_OPTIONS+=",direct_running_mode=multi_processing"
  fi
fi
if [[ "$BEAM_OPTIONS" == *runner=DataflowRunner* && "${DATA_DIR:-}" != gs://* ]]; then
  die "DataflowRunner writes from Dataflow workers: set DATA_DIR to a" \
      "gs://... directory (got '${DATA_DIR:-}')"
fi
if [[ "$BEAM_OPTIONS" != *runner=DirectRunner* && -n "${MANUAL_DIR:-}" ]]; then
  say "warning: the Beam workers read MANUAL_DIR (${MANUAL_DIR}) with local" \
      "file I/O, so it must exist at that path on every worker"
fi

# The command runs in the repository root: local paths become absolute first.
absolute() { if [[ "$1" == /* || "$1" == *://* ]]; then echo "$1"; else echo "${PWD}/$1"; fi; }
if [[ -n "${MANUAL_DIR:-}" ]]; then MANUAL_DIR="$(absolute "$MANUAL_DIR")"; fi
if [[ -n "${DATA_DIR:-}" ]]; then DATA_DIR="$(absolute "$DATA_DIR")"; fi
cd "$(dirname "$here")"
build=(python -m gzevo_jax.data.build "--dataset=${DATASET}")
if [[ -n "${MANUAL_DIR:-}" ]]; then build+=("--manual_dir=${MANUAL_DIR}"); fi
if [[ -n "${DATA_DIR:-}" ]]; then build+=("--data_dir=${DATA_DIR}"); fi
if is_on SKIP_BAD_ROWS; then build+=(--skip_bad_rows); fi
build+=("--beam_pipeline_options=${BEAM_OPTIONS}" "$@")
say "building ${DATASET} with Apache Beam (${BEAM_OPTIONS%%,*})"
run "${build[@]}"

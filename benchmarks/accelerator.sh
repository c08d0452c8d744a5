#!/usr/bin/env bash
# The accelerator benchmark: train-step speed and MFU, and Grain input speed,
# as JSON lines, on a GPU or TPU host with JAX (TensorFlow is not needed).
#
#   benchmarks/accelerator.sh [OUT_DIR]          # default OUT_DIR: runs/accelerator
#   benchmarks/accelerator.sh --dry [OUT_DIR]    # seconds, on a CPU: tiny shapes
#
# 1. ResNet-50, 224 px, bfloat16, batch 256 per device: each objective's step
#    (compile time, step time, img/s, FLOPs, MFU against the device's peak).
# 2. The default config (configs/hybrid.py) for the three objectives.
# 3. The Grain input pipeline on $DATASET (default gz_evo/synthetic, 64 px)
#    from $TFDS_DATA_DIR: it must hold the dataset's array_record files
#    (`python -m gzevo_jax.data.build --dataset=gz_evo/synthetic
#    --file_formats=array_record` where TensorFlow is installed, then copy
#    the directory), or TensorFlow must be installed here to build them.
#    Without either, the input part writes a "skipped" line and the rest runs.
#
# Writes OUT_DIR/accelerator.jsonl (every line of every part) and a log per
# part; each part has its own time limit, so the whole run stays within
# about 8 minutes. --dry runs the same commands at tiny sizes (and builds the
# tiny dataset) so the test suite can check the script on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0
if [[ "${1:-}" == "--dry" ]]; then dry=1; shift; fi
out="${1:-runs/accelerator}"
mkdir -p "$out"
: > "$out/accelerator.jsonl"

devices=$(python -c 'import jax; print(jax.local_device_count())')
if (( dry )); then
  per_device=2; steps=1; warmup=0; batches=2; limit=300
  dataset="${DATASET:-gz_evo/synthetic_tiny}"
  tiny=(--config.model.width_multiplier=0.0625 --config.data.image_size=32
        --config.model.projector_hidden_dim=32 --config.model.projection_dim=16
        --config.model.predictor_hidden_dim=32)
  resnet50=(--config.model.encoder=resnet50 --config.model.dtype=bfloat16
            "${tiny[@]}")
  default=("${tiny[@]}" --config.global_batch_size=$(( 2 * devices )))
else
  per_device=256; steps=20; warmup=3; batches=40; limit=150
  dataset="${DATASET:-gz_evo/synthetic}"
  resnet50=(--config.model.encoder=resnet50 --config.model.width_multiplier=1.0
            --config.data.image_size=224 --config.model.dtype=bfloat16)
  default=()
fi

say() { echo "[accelerator] $*" >&2; }

# One part: runs its command under a time limit; a part that fails or runs
# out of time writes a line saying so, and the next part runs.
part() {
  local name=$1; shift
  say "$name: $*"
  local status=0
  timeout "$limit" "$@" > "$out/$name.log" 2>&1 || status=$?
  if (( status == 0 )) && [[ -s "$out/$name.jsonl" ]]; then
    python -c 'import json, sys
for line in open(sys.argv[2]):
    print(json.dumps({"part": sys.argv[1], **json.loads(line)}))' \
      "$name" "$out/$name.jsonl" >> "$out/accelerator.jsonl"
  else
    python -c 'import json, sys; print(json.dumps({"part": sys.argv[1], "failed": int(sys.argv[2]), "log": sys.argv[3]}))' \
      "$name" "$status" "$out/$name.log" >> "$out/accelerator.jsonl"
    say "$name failed (status $status); see $out/$name.log"
  fi
}

part resnet50 python -m gzevo_jax.benchmark --config=configs/hybrid.py \
  "${resnet50[@]}" --config.global_batch_size=$(( per_device * devices )) \
  --steps="$steps" --warmup="$warmup" --input=false \
  --json_out="$out/resnet50.jsonl"

part default python -m gzevo_jax.benchmark --config=configs/hybrid.py \
  ${default[@]+"${default[@]}"} --steps="$steps" --warmup="$warmup" \
  --input=false --json_out="$out/default.jsonl"

part input python -m gzevo_jax.data.benchmark --config=configs/hybrid.py \
  --config.data.dataset="$dataset" --sources=grain --batches="$batches" \
  --json_out="$out/input.jsonl"

say "wrote $out/accelerator.jsonl"
cat "$out/accelerator.jsonl"

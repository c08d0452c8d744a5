#!/usr/bin/env bash
# Run gzevo_jax on this machine, optionally on N simulated CPU devices (to
# try data parallelism without accelerators).
#
#   CONFIG=configs/hybrid.py:smoke launch/local.sh [--config.FIELD=VALUE ...]
#   CONFIG=configs/hybrid.py CPU_DEVICES=8 WORKDIR=runs/hybrid8 launch/local.sh
set -euo pipefail
: "${CONFIG:?set CONFIG, e.g. CONFIG=configs/hybrid.py:smoke}"
cd "$(dirname "$0")/.."
args=("--config=${CONFIG}")
if [[ -n "${WORKDIR:-}" ]]; then args+=("--workdir=${WORKDIR}"); fi
if [[ -n "${CPU_DEVICES:-}" ]]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${CPU_DEVICES}"
  export JAX_PLATFORMS=cpu
fi
echo "launch/local.sh: python -m gzevo_jax.main ${args[*]} $*" \
     "${CPU_DEVICES:+(on ${CPU_DEVICES} simulated CPU devices)}"
exec python -m gzevo_jax.main "${args[@]}" "$@"

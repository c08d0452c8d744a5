#!/usr/bin/env bash
# Run gzevo_jax on this machine, optionally on N simulated CPU devices (to
# try data parallelism without accelerators) and in several processes (to
# try multi-host training: what a TPU pod or a Slurm job runs).
#
#   CONFIG=configs/hybrid.py:smoke launch/local.sh [--config.FIELD=VALUE ...]
#   CONFIG=configs/hybrid.py CPU_DEVICES=8 WORKDIR=runs/hybrid8 launch/local.sh
#   NUM_PROCESSES=2 CPU_DEVICES=2 CONFIG=configs/hybrid.py:smoke launch/local.sh
#
# Required: CONFIG (config file[:variant]).
# Optional:
#   WORKDIR        run directory (default: runs/<run_name>)
#   CPU_DEVICES    simulate this many CPU devices per process (sets
#                  JAX_PLATFORMS=cpu)
#   NUM_PROCESSES  start this many processes (default 1), each with
#                  --coordinator_address=localhost:PORT --num_processes=N
#                  --process_id=i; their output lines start with [p<i>];
#                  SIGINT/SIGTERM go to every process (they checkpoint and
#                  exit); fails if any process fails
#   PORT           coordinator port (default: a free one)
#   DRY_RUN=1      print the commands without running them
# Arguments are passed on to python -m gzevo_jax.main.
set -euo pipefail
LAUNCH_NAME=launch/local.sh
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=launch/common.sh
source "${here}/common.sh"
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then usage "$0"; exit 0; fi
require_vars 'CONFIG|config file[:variant], e.g. CONFIG=configs/hybrid.py:smoke'
num_processes="${NUM_PROCESSES:-1}"
if ! [[ "$num_processes" =~ ^[1-9][0-9]*$ ]]; then
  die "NUM_PROCESSES must be a positive integer (got '${num_processes}')"
fi
cd "$(dirname "$here")"

args=("--config=${CONFIG}")
if [[ -n "${WORKDIR:-}" ]]; then args+=("--workdir=${WORKDIR}"); fi
env_prefix=''
if [[ -n "${CPU_DEVICES:-}" ]]; then
  export XLA_FLAGS="${XLA_FLAGS:+${XLA_FLAGS} }--xla_force_host_platform_device_count=${CPU_DEVICES}"
  export JAX_PLATFORMS=cpu
  env_prefix="XLA_FLAGS=$(quote_cmd "$XLA_FLAGS") JAX_PLATFORMS=cpu "
fi

if (( num_processes == 1 )); then
  say "${env_prefix}$(quote_cmd python -m gzevo_jax.main "${args[@]}" "$@")${CPU_DEVICES:+" (on ${CPU_DEVICES} simulated CPU devices)"}"
  if dry_run; then exit 0; fi
  exec python -m gzevo_jax.main "${args[@]}" "$@"
fi

if [[ -z "${PORT:-}" ]]; then
  PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')"
fi
args+=("--coordinator_address=localhost:${PORT}"
       "--num_processes=${num_processes}")
each="${CPU_DEVICES:+ on ${CPU_DEVICES} simulated CPU devices each}"
say "${num_processes} processes${each}, coordinator localhost:${PORT}"
for (( i = 0; i < num_processes; i++ )); do
  echo "+ [p${i}] ${env_prefix}$(quote_cmd python -m gzevo_jax.main \
    "${args[@]}" "--process_id=${i}" "$@")"
done
if dry_run; then exit 0; fi

# Job control gives each process its own process group: a Ctrl-C reaches this
# script only, which passes it on once to every process (and background
# processes keep SIGINT instead of ignoring it).
set -m
export PYTHONUNBUFFERED=1  # Lines appear as they are printed.
pids=()
prefix() {  # Copies stdin to stdout with $1 before each line.
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    printf '%s%s\n' "$1" "$line"
  done
}
forward() {
  say "SIG$1: passing it on to every process (they checkpoint and exit)"
  if (( ${#pids[@]} )); then kill -s "$1" "${pids[@]}" 2>/dev/null || true; fi
}
trap 'forward INT' INT
trap 'forward TERM' TERM
for (( i = 0; i < num_processes; i++ )); do
  # The prefixer ignores the signals, so no output line is lost while the
  # processes save their checkpoints; it ends when its process does.
  python -m gzevo_jax.main "${args[@]}" "--process_id=${i}" "$@" \
    > >(trap '' INT TERM; prefix "[p${i}] ") 2>&1 &
  pids+=("$!")
done

failed=()
for (( i = 0; i < num_processes; i++ )); do
  # A trapped signal interrupts wait; keep waiting while the process runs.
  while :; do
    status=0
    wait "${pids[$i]}" || status=$?
    kill -0 "${pids[$i]}" 2>/dev/null || break
  done
  if (( status )); then failed+=("p${i} (exit status ${status})"); fi
done
wait  # The output prefixers.
if (( ${#failed[@]} )); then
  echo "${LAUNCH_NAME}: error: failed: ${failed[*]}" >&2
  exit 1
fi
say "all ${num_processes} processes finished"

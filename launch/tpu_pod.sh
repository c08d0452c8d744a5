#!/usr/bin/env bash
# Pretrain on a Cloud TPU VM pod slice: create it, copy this repository to
# every worker and install it, run the same command on all workers (one JAX
# process per host, --distributed=on), stream their output, delete the TPU.
#
#   launch/tpu_pod.sh [STEP ...]       STEP: create, setup, run, delete, all
#                                      (default all = create setup run delete)
#
#   TPU_NAME=gz-pod ZONE=us-central2-b ACCELERATOR_TYPE=v4-32 \
#   CONFIG=configs/hybrid.py:gz_evo WORKDIR=gs://BUCKET/runs/hybrid \
#   DATA_DIR=gs://BUCKET/tensorflow_datasets SPOT=1 launch/tpu_pod.sh
#
# Required: TPU_NAME, ZONE; ACCELERATOR_TYPE (create); CONFIG and WORKDIR
# (run). WORKDIR must be gs://...: every host writes its part of each
# checkpoint there, and a rerun of the same command resumes from it.
# Optional:
#   PROJECT          gcloud project (default: gcloud's configured one)
#   RUNTIME_VERSION  TPU software version (default from ACCELERATOR_TYPE:
#                    v2-alpha-tpuv6e, v2-alpha-tpuv5, v2-alpha-tpuv5-lite,
#                    else tpu-ubuntu2204-base)
#   SPOT=1           create a Spot TPU (cheaper; can be preempted at any time)
#   DATA_DIR         TFDS data dir, passed as --config.data.data_dir (use
#                    gs://... for real data; synthetic data builds on each host)
#   EXTRA_ARGS       more flags for gzevo_jax.main, e.g. '--config.seed=1'
#   REPO_URL         git URL to clone on the workers (and REPO_REF to check
#                    out) instead of copying this working tree
#   REMOTE_DIR       checkout directory on the workers (default gzevo_jax,
#                    under the home directory; the venv is REMOTE_DIR-venv)
#   KEEP_TPU=1       'all' keeps the TPU afterwards (default: 'all' deletes
#                    it at the end, and also when a step fails)
#   DRY_RUN=1        print the commands without running them
set -euo pipefail
LAUNCH_NAME=launch/tpu_pod.sh
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=launch/common.sh
source "${here}/common.sh"
repo="$(dirname "$here")"

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then usage "$0"; exit 0; fi

steps=()
for arg in "${@:-all}"; do
  case "$arg" in
    all)
      steps+=(create setup run)
      if ! is_on KEEP_TPU; then steps+=(delete); fi
      ;;
    create|setup|run|delete) steps+=("$arg") ;;
    *) die "unknown step '${arg}' (choose from create, setup, run, delete, all)" ;;
  esac
done
has_step() { [[ " ${steps[*]} " == *" $1 "* ]]; }

required=('TPU_NAME|name of the TPU VM, e.g. TPU_NAME=gz-pod'
          'ZONE|a zone that has the TPU type, e.g. ZONE=us-central2-b')
if has_step create; then
  required+=('ACCELERATOR_TYPE|pod slice type, e.g. ACCELERATOR_TYPE=v4-32')
fi
if has_step run; then
  required+=('CONFIG|config file[:variant], e.g. CONFIG=configs/hybrid.py:gz_evo'
             'WORKDIR|shared run directory, e.g. WORKDIR=gs://BUCKET/runs/hybrid')
fi
require_vars "${required[@]}"
if has_step run && [[ "$WORKDIR" != gs://* ]]; then
  die "WORKDIR must start with gs:// (got '${WORKDIR}'): all hosts write" \
      "checkpoints to it, so it must be a GCS bucket they share"
fi

if [[ -z "${RUNTIME_VERSION:-}" ]]; then
  case "${ACCELERATOR_TYPE:-}" in
    v6e*) RUNTIME_VERSION=v2-alpha-tpuv6e ;;
    v5p*) RUNTIME_VERSION=v2-alpha-tpuv5 ;;
    v5e*|v5litepod*) RUNTIME_VERSION=v2-alpha-tpuv5-lite ;;
    *) RUNTIME_VERSION=tpu-ubuntu2204-base ;;
  esac
fi
REMOTE_DIR="${REMOTE_DIR:-gzevo_jax}"
venv="${REMOTE_DIR}-venv"
gcloud_tpu=(gcloud compute tpus tpu-vm)
where=("--zone=${ZONE}")
if [[ -n "${PROJECT:-}" ]]; then where+=("--project=${PROJECT}"); fi
ssh_all=("${gcloud_tpu[@]}" ssh "$TPU_NAME" "${where[@]}" --worker=all)

step_create() {
  local create=("${gcloud_tpu[@]}" create "$TPU_NAME" "${where[@]}"
                "--accelerator-type=${ACCELERATOR_TYPE}"
                "--version=${RUNTIME_VERSION}")
  if is_on SPOT; then create+=(--spot); fi
  run "${create[@]}"
}

step_setup() {
  local fetch
  if [[ -n "${REPO_URL:-}" ]]; then
    fetch="rm -rf $(quote_cmd "$REMOTE_DIR") && $(quote_cmd git clone "$REPO_URL" "$REMOTE_DIR")"
    if [[ -n "${REPO_REF:-}" ]]; then
      fetch+=" && $(quote_cmd git -C "$REMOTE_DIR" checkout "$REPO_REF")"
    fi
  else
    # This working tree (tracked and untracked files, not ignored ones such
    # as runs/), uncommitted changes included.
    local tarball archive="gzevo_jax_src.tar.gz"
    if dry_run; then tarball="$(mktemp -u)"; else tarball="$(mktemp)"; fi
    echo "+ (cd $(quote_cmd "$repo") && git ls-files -z --cached --others" \
         "--exclude-standard | tar --null -T - -czf $(quote_cmd "$tarball"))"
    if ! dry_run; then
      (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | tar --null -T - -czf "$tarball")
    fi
    local status=0
    run "${gcloud_tpu[@]}" scp "$tarball" "${TPU_NAME}:${archive}" \
        "${where[@]}" --worker=all || status=$?
    if ! dry_run; then rm -f "$tarball"; fi
    if (( status )); then return "$status"; fi
    fetch="rm -rf $(quote_cmd "$REMOTE_DIR") && mkdir -p $(quote_cmd "$REMOTE_DIR")"
    fetch+=" && tar -xzf ${archive} -C $(quote_cmd "$REMOTE_DIR") && rm ${archive}"
  fi
  local install="bash $(quote_cmd "${REMOTE_DIR}/launch/tpu_worker_setup.sh" "$venv")"
  run "${ssh_all[@]}" "--command=${fetch} && ${install}"
}

step_run() {
  local main=(python -m gzevo_jax.main "--config=${CONFIG}"
              "--workdir=${WORKDIR}" --distributed=on)
  if [[ -n "${DATA_DIR:-}" ]]; then
    main+=("--config.data.data_dir=${DATA_DIR}")
  fi
  read_extra_args
  main+=(${extra_args[@]+"${extra_args[@]}"})
  local command
  command=". $(quote_cmd "$venv")/bin/activate && cd $(quote_cmd "$REMOTE_DIR")"
  command+=" && PYTHONUNBUFFERED=1 $(quote_cmd "${main[@]}")"
  run "${ssh_all[@]}" "--command=${command}"
}

step_delete() {
  run "${gcloud_tpu[@]}" delete "$TPU_NAME" "${where[@]}" --quiet
}

say "steps: ${steps[*]} on TPU ${TPU_NAME} (${ACCELERATOR_TYPE:-existing}," \
    "zone ${ZONE}${PROJECT:+, project ${PROJECT}}$(is_on SPOT && echo ', spot'))"
if has_step run; then say "run: --config=${CONFIG} --workdir=${WORKDIR}"; fi

# After 'create', a failing or interrupted step still deletes the TPU (it
# costs money while it exists) when 'delete' was asked for.
delete_on_exit=0
cleanup() {
  local status=$?
  if (( delete_on_exit )); then
    delete_on_exit=0
    say "step failed or interrupted (status ${status}): deleting the TPU" \
        "(KEEP_TPU=1 keeps it)"
    step_delete || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for step in "${steps[@]}"; do
  say "step ${step}"
  if [[ "$step" == delete ]]; then delete_on_exit=0; fi
  "step_${step}"
  if [[ "$step" == create ]] && has_step delete; then delete_on_exit=1; fi
done
if has_step create && ! has_step delete; then
  say "the TPU ${TPU_NAME} is still running (and billed): delete it with" \
      "'launch/tpu_pod.sh delete'"
fi
say "done"

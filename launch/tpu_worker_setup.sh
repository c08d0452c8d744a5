#!/usr/bin/env bash
# Installs this checkout on one TPU VM worker; launch/tpu_pod.sh's 'setup'
# step runs it on every worker:
#
#   bash launch/tpu_worker_setup.sh VENV_DIR
#
# Creates the virtual environment VENV_DIR (kept between setups) with Python
# 3.11+ (jax>=0.7 needs it; the TPU images ship Ubuntu 22.04's 3.10, so
# python3.11 is installed with apt when needed), then installs the package
# and jax[tpu].
set -euo pipefail
venv="${1:?usage: bash launch/tpu_worker_setup.sh VENV_DIR}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [[ ! -x "${venv}/bin/python" ]]; then
  py=python3
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "tpu_worker_setup: $(python3 --version) is too old; installing python3.11"
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv
    py=python3.11
  fi
  "$py" -m venv "$venv"
fi
# shellcheck source=/dev/null
source "${venv}/bin/activate"
set -x
pip install -q -U pip
pip install -q -e "$repo"
pip install -q -U 'jax[tpu]'
python -c 'import jax; print("tpu_worker_setup: jax", jax.__version__)'

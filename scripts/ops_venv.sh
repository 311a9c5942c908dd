#!/usr/bin/env bash
# Creates (once) the Python environment the operations checks use: Debian's python3 with its
# packages (PyYAML, numpy, matplotlib) plus, from PyPI, pinned helm-python-sdk (Helm's Go
# library behind a Python API: renders the chart with the real Helm engine, no helm binary)
# and kubernetes-validate (Kubernetes' JSON schemas). Prints the venv's python.
#   scripts/ops_venv.sh BUILD_DIR
set -euo pipefail
build="${1:?usage: ops_venv.sh BUILD_DIR}"
venv="$build/ops-venv"
stamp="$venv/.kvtier-ops-1"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 >&2
  touch "$stamp"
fi
echo "$venv/bin/python"

#!/usr/bin/env bash
# Creates (once per package version) a venv with the kvtier Python package installed from
# the repository (client/python; its gRPC stubs generated from proto/ by grpcio-tools at
# install time) and pytest, all from PyPI. Prints the venv's python.
#   scripts/python_venv.sh BUILD_DIR
set -euo pipefail
build="${1:?usage: python_venv.sh BUILD_DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$build/py-venv"
# Reinstall when the package or the protos change.
stamp="$venv/.kvtier-$(cat "$root"/client/python/pyproject.toml "$root"/client/python/setup.py \
  "$root"/proto/kvtier/v1/*.proto | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pytest>=7" \
    "$root/client/python" >&2
  touch "$stamp"
else
  # The package again (it is small; its dependencies are there): tests run against the
  # working tree's code.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --force-reinstall "$root/client/python" >&2
fi
echo "$venv/bin/python"

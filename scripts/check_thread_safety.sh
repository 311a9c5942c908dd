#!/usr/bin/env bash
# Runs clang's thread-safety analysis (-Wthread-safety, through clang-tidy since the build
# uses gcc, which ignores the annotations) over every source that uses absl::Mutex or the
# ABSL_*GUARDED_BY / LOCKS_REQUIRED annotations. Fails on any finding.
# Usage: check_thread_safety.sh BUILD_DIR (needs its compile_commands.json)
set -euo pipefail
build="${1:?usage: check_thread_safety.sh BUILD_DIR}"
cd "$(dirname "$0")/.."
files=()
for f in $(grep -l -E "absl::Mutex|ABSL_(PT_)?GUARDED_BY|ABSL_EXCLUSIVE_LOCKS_REQUIRED" \
             cache_store/*.h cache_store/*.cc services/*.h services/*.cc client/*.h client/*.cc \
             worker/*.h worker/*.cc); do
  case "$f" in
    *.h) cc="${f%.h}.cc" ;;
    *) cc="$f" ;;
  esac
  [ -f "$cc" ] && files+=("$cc")
done
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)
echo "thread-safety analysis over: ${files[*]}"
out=$(clang-tidy -p "$build" --quiet \
        -checks='-*,clang-diagnostic-thread-safety*,bugprone-use-after-move' \
        -extra-arg=-Wthread-safety "${files[@]}" 2>&1 | grep -E "warning:|error:" || true)
if [ -n "$out" ]; then
  echo "$out"
  exit 1
fi
echo "thread-safety analysis: clean"

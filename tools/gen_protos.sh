#!/usr/bin/env bash
# Regenerates the committed Python code for protos/ into services/driftloop/v1/.
# Usage: tools/gen_protos.sh [OUT_ROOT]   (default: services; the test passes a temp dir to compare)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/services}"
py="${PYTHON:-$here/.venvs/serving/bin/python}"
case "$py" in /*) ;; */*) py="$here/$py" ;; esac
mkdir -p "$out/driftloop/v1"
cd "$here/protos"
"$py" -m grpc_tools.protoc -I . \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  driftloop/v1/events.proto driftloop/v1/inference.proto
printf '"""Generated from protos/driftloop/v1 by tools/gen_protos.sh. Do not edit."""\n' \
  > "$out/driftloop/v1/__init__.py"

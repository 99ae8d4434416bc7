#!/usr/bin/env bash
# Runs test suites one after another, each to the end even when an earlier one failed, then prints
# every suite's summary and exits non-zero if any failed. `make test` runs the serving and the
# monitor environments' suites through it.
#
#   tools/run_suites.sh NAME 'COMMAND' [NAME 'COMMAND' ...]
#
# Each suite's full output is also kept in $SUITE_LOG_DIR/NAME.log (default .run/test-logs).
set -uo pipefail
if (( $# == 0 || $# % 2 )); then
  echo "usage: $0 NAME 'COMMAND' [NAME 'COMMAND' ...]" >&2
  exit 64
fi
log_dir=${SUITE_LOG_DIR:-.run/test-logs}
mkdir -p "$log_dir"
names=() codes=() seconds=()
while (( $# )); do
  name=$1 command=$2
  shift 2
  echo "=== suite $name: $command"
  start=$SECONDS
  PYTHONUNBUFFERED=1 bash -c "$command" 2>&1 | tee "$log_dir/$name.log"
  codes+=("${PIPESTATUS[0]}")
  names+=("$name")
  seconds+=($(( SECONDS - start )))
done
failed=0
echo
echo "=== summary"
for i in "${!names[@]}"; do
  log="$log_dir/${names[$i]}.log"
  # pytest's short summary (FAILED/ERROR lines) and its closing line, when the suite printed them.
  last=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* =+$' "$log" | tail -n 1)
  status=ok
  if [[ ${codes[$i]} != 0 ]]; then status="FAILED (exit ${codes[$i]})"; failed=1; fi
  printf '%-8s %-18s %5ss  %s\n' "${names[$i]}" "$status" "${seconds[$i]}" "${last:-(no pytest summary line)}"
  grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/         /'
done
exit $failed

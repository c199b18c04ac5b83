#!/usr/bin/env bash
# What `make repro PROFILE=<profile>` runs: the DVC pipeline of one profile, keeping its lock in
# locks/<profile>.lock.
#
#   tools/repro.sh <profile>
#
# DVC writes each stage into dvc.lock as the stage finishes. This script restores the profile's lock
# before the run and copies dvc.lock back on every exit (end, failure, Ctrl-C, SIGTERM, hang-up), so a
# stopped run resumes where it stopped: the next run skips every stage whose lock entry still matches.
# When the pipeline succeeds, its wall time goes to results/<profile>/repro_time.json.
set -u -o pipefail
profile=${1:?usage: tools/repro.sh <profile>}
cd "$(dirname "$0")/.."
if [ ! -f "profiles/$profile.yaml" ]; then
  echo "no profile '$profile': choose one of $(ls profiles | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
  exit 2
fi
cp "profiles/$profile.yaml" params.yaml
if [ -f "locks/$profile.lock" ]; then cp "locks/$profile.lock" dvc.lock; else rm -f dvc.lock; fi
mkdir -p locks
log=$(mktemp)
save_lock() { if [ -f dvc.lock ]; then cp dvc.lock "locks/$profile.lock"; fi; }

set -m  # the pipeline runs as a job of its own, so one signal reaches dvc, papermill and the kernels
start=$(date +%s)
dvc repro 2>&1 | tee "$log" &
job=$(ps -o pgid= -p $! | tr -d ' ')
stop() {
  trap '' INT TERM HUP
  echo "stopping: the finished stages stay in locks/$profile.lock, and the next run skips them" >&2
  kill -INT -- "-$job" 2>/dev/null
  # started from a non-interactive shell's background, the job ignores SIGINT: TERM it after 10 s
  for _ in $(seq 50); do kill -0 -- "-$job" 2>/dev/null || break; sleep 0.2; done
  kill -TERM -- "-$job" 2>/dev/null
  wait
  save_lock
  rm -f "$log"
  exit 130
}
trap stop INT TERM HUP
wait %1
status=$?
trap - INT TERM HUP
save_lock
if [ "$status" -eq 0 ]; then
  python tools/record_time.py "results/$profile/repro_time.json" $(( $(date +%s) - start )) --key pipeline_s \
    stages_run="$(grep -c "^Running stage" "$log")" stages_total="$(dvc stage list | wc -l | tr -d ' ')"
fi
rm -f "$log"
exit "$status"

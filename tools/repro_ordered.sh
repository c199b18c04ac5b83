#!/usr/bin/env bash
# Run a long profile stage by stage, most important first, saving the profile's DVC lock after
# every stage so that a run stopped at any point resumes where it stopped (`dvc repro` skips
# stages whose lock entry still matches). Ends with `dvc repro` for everything left.
# --allow-missing: a stage whose only change is a missing executed notebook (notebooks/_runs/ is
# not in git, so a fresh clone lacks it) is skipped; its committed results stand.
#
#   tools/repro_ordered.sh full            # what the full profile was run with
#   python tools/stage_times.py locks/full-logs/*.log   # its wall time, stage by stage
#
# Same effect as `make repro PROFILE=full`, only the order differs (DVC's own order runs the
# frontier before the trials). Do not run other CPU-heavy jobs beside it: 2 cores are all it has.
set -u
profile=${1:?usage: tools/repro_ordered.sh <profile>}
cd "$(dirname "$0")/.."
test -f "profiles/$profile.yaml" || { echo "no profile '$profile'"; exit 1; }
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1
cp "profiles/$profile.yaml" params.yaml
if [ -f "locks/$profile.lock" ]; then cp "locks/$profile.lock" dvc.lock; else rm -f dvc.lock; fi
mkdir -p locks "locks/$profile-logs"
# every run logs to locks/<profile>-logs/<profile>_MMDD_HHMM.log (committed beside the lock): the
# profile's wall time is summed from these logs by tools/stage_times.py
log="locks/$profile-logs/${profile}_$(date -u +%m%d_%H%M).log"
exec > >(tee -a "$log") 2>&1

# priority order: the 5-trial core seed by seed (so a stopped run still has paired trials; the
# cheapest check that packed no-DP training moves the model first), the cheap tables, the
# paper-sized bytes, offline LiRA and the MIA table (issue 5), the frontier, the other ablations, convergence and non-IID,
# the client-count sweep, the sparsity sweep; the regexes select stage names of `dvc stage list`
core='(fedavg|medhe|medhe_no_he|medhe_no_dp)'
order=(
  '^data$'
  '^train@medhe_no_dp-42$'
)
for seed in $(python -c "from medhe import params; print(*params.load('params.yaml').pipeline.seeds)"); do
  order+=("^train@$core-$seed\$")
done
order+=(
  '^(security|privacy|bench)$'
  '^papersize@'
  '^lira@'
  '^mia$'
  '^frontier@'
  '^train@'
  '^(convergence|noniid)@'
  '^scale@'
  '^sweep@'
)
stages=$(dvc stage list | awk '{print $1}')
for pattern in "${order[@]}"; do
  for stage in $(grep -E "$pattern" <<<"$stages"); do
    echo "=== $(date -u +%H:%M:%S) $stage"
    dvc repro --allow-missing --single-item "$stage" || echo "!!! $stage failed"
    cp dvc.lock "locks/$profile.lock"
  done
done
echo "=== $(date -u +%H:%M:%S) remaining stages"
dvc repro --allow-missing; status=$?
cp dvc.lock "locks/$profile.lock"
echo "=== $(date -u +%H:%M:%S) done (status $status)"
exit $status

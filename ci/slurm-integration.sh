#!/usr/bin/env bash
# The documented HPC paths run on a real SLURM cluster (ci/slurm-start.sh: one node, this
# machine), with the harmonize-bids of a native install (default: the repository's .venv):
#   1. docs/hpc/harmonize_bids_array.sbatch over a three-participant phantom (tasks 1-3),
#      then with LEVEL=group after the array, as docs/hpc.md shows; a task with no
#      participant (task 4) exits 66, and a job that depends on it with
#      --kill-on-invalid-dep=yes is cancelled instead of pending forever;
#   2. harmonize-bids --use-plugin docs/hpc/nipype_slurm.yml (every node its own job) with
#      LOGNAME and USER unset;
#   3. a SLURMGraph plugin file is refused (exit 64) before anything is submitted or written.
# Outputs must be complete and pass bids-validator-deno; exit codes as README documents.
#
#   ci/slurm-integration.sh      # as root on Debian 12 with apt; `make test-integration`
#
# Settings (environment variables):
#   SLURM_WORK  working folder, outside the repository; emptied first
#               (default /var/tmp/harmonize-bids-ci/slurm)
#   VENV        the virtual environment with harmonize-bids (default: the repository's .venv)
#   WAIT_S      the longest wait for a batch of jobs, in seconds (default 2400)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${SLURM_WORK:-/var/tmp/harmonize-bids-ci/slurm}
VENV=${VENV:-$REPO/.venv}
WAIT_S=${WAIT_S:-2400}
SCRIPT=$REPO/docs/hpc/harmonize_bids_array.sbatch
export SLURM_ROOT=$WORK/slurm

log() { printf '[slurm-integration %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() {
  log "FAIL: $*"
  find "$WORK/submit" "$WORK/plugin-work" -name '*.out' -newer "$WORK/bids" 2>/dev/null \
    | head -n 20 | while read -r out; do echo "--- $out"; tail -n 20 "$out"; done
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (the cluster's daemons need it)"
[ -x "$VENV/bin/harmonize-bids" ] || fail "no harmonize-bids in $VENV; run make first"
case "$WORK" in "$REPO"|"$REPO"/*) fail "SLURM_WORK must lie outside the repository";; esac
case "$WORK" in /|/tmp|/var|/var/tmp|/home|/root|/usr|/etc|"") fail "refusing SLURM_WORK=$WORK";; esac
rm -rf "$WORK"   # a fresh start: this folder is the script's own
mkdir -p "$WORK/submit"
export PATH="$VENV/bin:$PATH" NIPYPE_NO_ET=1

"$REPO/ci/slurm-start.sh"
trap '"$REPO/ci/slurm-stop.sh"' EXIT

state_of() { scontrol show job -o "$1" | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2; }
exit_of() { scontrol show job -o "$1" | grep -o ' ExitCode=[0-9]*' | head -n 1 | cut -d= -f2; }
wait_for() {  # wait_for JOBID...: until none is pending or running
  local deadline=$((SECONDS + WAIT_S))
  while squeue -h -j "$(IFS=,; echo "$*")" -t PENDING,RUNNING,CONFIGURING,COMPLETING 2>/dev/null \
      | grep -q .; do
    [ "$SECONDS" -lt "$deadline" ] || { squeue; fail "jobs $* still queued after ${WAIT_S} s"; }
    sleep 5
  done
}
harmonized() { find "$1" -name '*_desc-harmonized_T1w.nii.gz' | wc -l; }
complete() {  # complete OUTPUT_DIR SUBJECT...: every derivative of both sessions is there
  local out=$1 subject session kind
  shift
  for subject in "$@"; do
    for session in 1p5T 3T; do
      for kind in desc-preproc_T1w desc-brain_mask desc-harmonized_T1w; do
        for ext in nii.gz json; do
          [ -s "$out/sub-$subject/ses-$session/anat/sub-${subject}_ses-${session}_$kind.$ext" ] \
            || fail "$out: no sub-${subject}_ses-${session}_$kind.$ext"
        done
      done
    done
    [ -s "$out/sub-$subject.html" ] || fail "$out: no sub-$subject.html"
  done
}

log "phantom: three travelling subjects (1.5 T and 3 T), tiny"
harmonize-bids-phantom "$WORK/bids" --subjects 3 --size tiny --seed 7 >/dev/null
export BIDS_DIR=$WORK/bids OUTPUT_DIR=$WORK/out WORK_ROOT=$WORK/work CONTAINER=none \
  EXTRA_ARGS=--sloppy

log "1/3 the array script: tasks 1-3 with a participant, task 4 without"
cd "$WORK/submit"   # an empty folder: the script must need nothing in it
start=$SECONDS
array=$(sbatch --parsable --array=1-3 "$SCRIPT")
empty=$(sbatch --parsable --array=4 "$SCRIPT")
group=$(LEVEL=group sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --output=harmonize_bids_group_%j.out "$SCRIPT")
orphan=$(sbatch --parsable --dependency="afterok:$empty" --kill-on-invalid-dep=yes \
  --output=/dev/null --wrap true)
wait_for "$array" "$empty" "$group" "$orphan"
log "array and group finished in $((SECONDS - start)) s"
for task in 1 2 3; do
  [[ "$(state_of "${array}_$task")" = COMPLETED && "$(exit_of "${array}_$task")" = 0 ]] \
    || fail "array task $task: $(state_of "${array}_$task"), exit $(exit_of "${array}_$task")"
  [ -s "harmonize_bids_${array}_$task.out" ] || fail "no log harmonize_bids_${array}_$task.out"
done
[ "$(exit_of "${empty}_4")" = 66 ] || fail "task 4 (no participant) exited $(exit_of "${empty}_4"), not 66"
grep -q "No participant for array task 4" "harmonize_bids_${empty}_4.out" \
  || fail "task 4 did not say why it failed"
[[ "$(state_of "$group")" = COMPLETED && "$(exit_of "$group")" = 0 ]] \
  || fail "group job: $(state_of "$group"), exit $(exit_of "$group")"
[ -s "harmonize_bids_group_$group.out" ] || fail "no log harmonize_bids_group_$group.out"
[ "$(state_of "$orphan")" = CANCELLED ] \
  || fail "the job after the failed task is $(state_of "$orphan"), not CANCELLED"
complete "$OUTPUT_DIR" 01 02 03
for f in group_T1w.tsv group_T1w_paired.tsv group_T1w.html; do
  [ -s "$OUTPUT_DIR/$f" ] || fail "no $f"
done
bids-validator-deno "$OUTPUT_DIR" >"$WORK/validator-array.txt" \
  || { cat "$WORK/validator-array.txt"; fail "the array's outputs are not valid BIDS"; }
log "PASS array: tasks 1-3 exit 0 ($(harmonized "$OUTPUT_DIR") harmonized images), task 4 exit 66, group exit 0, orphan cancelled, validator clean"

log "2/3 --use-plugin docs/hpc/nipype_slurm.yml with LOGNAME and USER unset"
start=$SECONDS
code=0
env -u LOGNAME -u USER harmonize-bids "$BIDS_DIR" "$WORK/out-plugin" participant \
  --participant-label 01 -w "$WORK/plugin-work" --sloppy \
  --use-plugin "$REPO/docs/hpc/nipype_slurm.yml" >"$WORK/plugin.log" 2>&1 || code=$?
[ "$code" = 0 ] || { tail -n 30 "$WORK/plugin.log"; fail "the SLURM plugin run exited $code"; }
[ -z "$(squeue -h)" ] || { squeue; fail "jobs still queued after harmonize-bids returned"; }
jobs=$(find "$WORK/plugin-work" -name 'slurm-*.out' | wc -l)
[ "$jobs" -gt 0 ] || fail "the SLURM plugin submitted no job"
complete "$WORK/out-plugin" 01
bids-validator-deno "$WORK/out-plugin" >"$WORK/validator-plugin.txt" \
  || { cat "$WORK/validator-plugin.txt"; fail "the plugin run's outputs are not valid BIDS"; }
log "PASS SLURM plugin: exit 0 after $jobs jobs in $((SECONDS - start)) s, outputs complete, validator clean"

log "3/3 a SLURMGraph plugin file is refused"
printf 'plugin: SLURMGraph\nplugin_args:\n  dont_resubmit_completed_jobs: true\n' \
  >"$WORK/slurmgraph.yml"
code=0
harmonize-bids "$BIDS_DIR" "$WORK/out-graph" participant -w "$WORK/graph-work" --sloppy \
  --use-plugin "$WORK/slurmgraph.yml" 2>"$WORK/graph.log" || code=$?
[ "$code" = 64 ] || { cat "$WORK/graph.log"; fail "SLURMGraph: exit $code, not 64"; }
grep -q "returns before its jobs finish" "$WORK/graph.log" || fail "SLURMGraph: no reason given"
[[ ! -e "$WORK/out-graph" && -z "$(squeue -h)" ]] \
  || fail "SLURMGraph: something was written or submitted"
log "PASS SLURMGraph refused with exit 64: $(grep -o 'error: .*' "$WORK/graph.log" | cut -c1-100)"
log "all SLURM checks passed"

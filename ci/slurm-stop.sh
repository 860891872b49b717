#!/usr/bin/env bash
# ci/slurm-stop.sh: cancel all jobs and stop slurmd, slurmctld and munged started
# by ci/slurm-start.sh (by the PIDs in their pidfiles). Leaves logs in $SLURM_ROOT
# unless SLURM_CLEAN=1.
set -uo pipefail
SLURM_ROOT=${SLURM_ROOT:-/tmp/slurm}

stop_pid() {  # name pidfile
  local name=$1 pf=$2 pid
  [ -s "$pf" ] || { echo "[slurm-stop] $name: no pidfile $pf"; return 0; }
  pid=$(cat "$pf")
  if ! kill -0 "$pid" 2>/dev/null; then echo "[slurm-stop] $name: pid $pid not running"; rm -f "$pf"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    # a zombie (already exited, not reaped yet) also passes kill -0
    if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; then
      echo "[slurm-stop] $name: pid $pid ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null
    fi
  fi
  rm -f "$pf"
  echo "[slurm-stop] $name (pid $pid) stopped"
}

# cancel whatever is still queued/running so no slurmstepd outlives slurmd
if [ -s "$SLURM_ROOT/slurmctld.pid" ] && kill -0 "$(cat "$SLURM_ROOT/slurmctld.pid")" 2>/dev/null; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    echo "[slurm-stop] cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

stop_pid slurmd    "$SLURM_ROOT/slurmd.pid"
stop_pid slurmctld "$SLURM_ROOT/slurmctld.pid"
stop_pid munged    /run/munge/munged.pid

[ "${SLURM_CLEAN:-0}" = 1 ] && rm -rf "$SLURM_ROOT"
exit 0

#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for ci/slurm-integration.sh: Debian's
# slurmctld, slurmd and munge, proctrack/linuxproc, task/none, no accounting (so no sacct:
# read exit codes with `scontrol show job`), up in about 8 s. Root, Debian 12, no systemd.
# Installs the packages when they are missing; stop it with ci/slurm-stop.sh (by pidfile).
#
# Environment (all optional):
#   SLURM_ROOT       state, log and pid folder            (default /tmp/slurm)
#   SLURM_NODE_CPUS  CPUs the node advertises             (default: nproc)
#                    more than nproc oversubscribes (SlurmdParameters=config_overrides)
#   SLURM_NODE_MEM   RealMemory in MB                     (default: MemTotal from free -m)
#   SLURM_SKIP_APT=1 never run apt-get
#   SLURM_WAIT_S     seconds to wait for the node to be idle (default 60)
set -euo pipefail

SLURM_ROOT=${SLURM_ROOT:-/tmp/slurm}
NODE=$(hostname -s)
HW_CPUS=$(nproc)
CPUS=${SLURM_NODE_CPUS:-$HW_CPUS}
MEM=${SLURM_NODE_MEM:-$(free -m | awk '/^Mem:/{print $2}')}
WAIT_S=${SLURM_WAIT_S:-60}
CONF=/etc/slurm/slurm.conf
t_start=$(date +%s%N)
log() { local ms=$(( ($(date +%s%N) - t_start) / 1000000 )); printf '[slurm-start %d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"; }
case "$SLURM_ROOT" in /|/tmp|/etc|/usr|/var|"") echo "refusing SLURM_ROOT=$SLURM_ROOT" >&2; exit 1;; esac

[ "$(id -u)" = 0 ] || { echo "ci/slurm-start.sh must run as root" >&2; exit 1; }

# 1. packages ---------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  if [ "${SLURM_SKIP_APT:-0}" = 1 ]; then echo "slurm/munge missing and SLURM_SKIP_APT=1" >&2; exit 1; fi
  log "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # postinst tries to start services; policy-rc.d/no systemd refuses, that is fine
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
log "slurm $(slurmd -V | awk '{print $2}'), node=$NODE cpus=$CPUS (hw $HW_CPUS) mem=${MEM}MB"

# refuse to start twice
for pf in "$SLURM_ROOT/slurmctld.pid" "$SLURM_ROOT/slurmd.pid"; do
  if [ -s "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; then
    echo "already running (pid $(cat "$pf") from $pf); run ci/slurm-stop.sh first" >&2; exit 1
  fi
done

# 2. munge --------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  log "creating munge key"
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
if [ -s /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null \
   && munge -n </dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running (pid $(cat /run/munge/munged.pid))"
else
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged     # daemonizes, pidfile /run/munge/munged.pid
  for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n </dev/null | unmunge >/dev/null || { echo "munged not working" >&2; tail /var/log/munge/munged.log >&2; exit 1; }
  log "munged up (pid $(cat /run/munge/munged.pid))"
fi

# 3. config -------------------------------------------------------------------
rm -rf "$SLURM_ROOT"
mkdir -p "$SLURM_ROOT"/{state,spool,log} /etc/slurm
extra=""
if [ "$CPUS" -gt "$HW_CPUS" ]; then
  # advertise more CPUs than the hardware has (lets #SBATCH -c 8 scripts run unmodified)
  extra="SlurmdParameters=config_overrides"
fi
cat > "$CONF" <<EOF
# written by ci/slurm-start.sh — single-node CI cluster, no systemd/cgroups/accounting
ClusterName=ci
SlurmctldHost=${NODE}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=${SLURM_ROOT}/state
SlurmdSpoolDir=${SLURM_ROOT}/spool
SlurmctldPidFile=${SLURM_ROOT}/slurmctld.pid
SlurmdPidFile=${SLURM_ROOT}/slurmd.pid
SlurmctldLogFile=${SLURM_ROOT}/log/slurmctld.log
SlurmdLogFile=${SLURM_ROOT}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# reject impossible requests at submit time instead of PENDING forever
EnforcePartLimits=ALL
# No DependencyParameters=kill_invalid_depend, as on most clusters: a job whose afterok
# dependency failed stays PENDING unless it was submitted with --kill-on-invalid-dep=yes
# (what docs/hpc.md tells users, and what ci/slurm-integration.sh checks).
# Keep finished jobs (and their exit codes) in scontrol show job for an hour, not 300 s.
MinJobAge=3600
# schedule batch jobs right at submit (default may delay them up to 3 s)
SchedulerParameters=batch_sched_delay=0
${extra}
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF

# 4. daemons (they daemonize and write their pidfiles) ------------------------
/usr/sbin/slurmctld -i
/usr/sbin/slurmd

# 5. wait until idle ----------------------------------------------------------
state=""
for _ in $(seq $((WAIT_S * 5))); do
  state=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.2
done
if [ "$state" != idle ]; then
  echo "node $NODE not idle after ${WAIT_S}s (state='$state')" >&2
  scontrol show node "$NODE" >&2 || true
  tail -n 30 "$SLURM_ROOT/log/slurmctld.log" "$SLURM_ROOT/log/slurmd.log" >&2 || true
  exit 1
fi
sinfo
log "slurmctld pid $(cat "$SLURM_ROOT/slurmctld.pid" 2>/dev/null || echo '?'), slurmd pid $(cat "$SLURM_ROOT/slurmd.pid" 2>/dev/null || echo '?'), munged pid $(cat /run/munge/munged.pid)"
log "cluster ready (node $NODE idle). Logs: $SLURM_ROOT/log."

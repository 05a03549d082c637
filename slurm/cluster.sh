#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's packages, for qtrain's SLURM
# sweeps and their tests: `slurm/cluster.sh up` (make slurm-up) and `slurm/cluster.sh down`
# (make slurm-down). slurmctld and slurmd run as root without systemd
# (proctrack/linuxproc, task/none), on 127.0.0.1, with 2 CPU slots in one partition,
# `debug`. Its state lives in $QTRAIN_SLURM_DIR (default /tmp/qtrain-slurm); its config
# is written to /etc/slurm/slurm.conf, where sbatch and squeue look for it.
set -euo pipefail

STATE=${QTRAIN_SLURM_DIR:-/tmp/qtrain-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by qtrain's slurm/cluster.sh"
NODE=$(hostname -s)

install_packages() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurm-wlm and munge with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
}

write_config() {
  if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    echo "$CONF exists and was not written by qtrain: not overwritten" >&2
    exit 1
  fi
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
  cat >"$CONF" <<CONFIG
$MARK
ClusterName=qtrain
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
KillWait=10
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFIG
}

start_munge() {
  if ! pgrep -x munged >/dev/null; then
    [[ -f /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge
    munged --force
  fi
}

up() {
  install_packages
  write_config
  start_munge
  pgrep -x slurmctld >/dev/null || slurmctld -i
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 60); do
    if sinfo --noheader --states=idle,mixed,allocated --format=%n 2>/dev/null | grep -qx "$NODE"; then
      scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
      echo "SLURM is up: partition debug, node $NODE, 2 CPUs (state in $STATE)"
      return
    fi
    sleep 1
  done
  echo "SLURM did not come up; its logs: $STATE/log" >&2
  tail -n 20 "$STATE"/log/*.log >&2 || true
  exit 1
}

down() {
  for daemon in slurmd slurmctld; do
    pkill -x "$daemon" || true
  done
  for _ in $(seq 30); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
    sleep 1
  done
  echo "SLURM is down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

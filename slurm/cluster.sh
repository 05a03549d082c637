#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's packages, for qtrain's SLURM
# sweeps and their tests: `slurm/cluster.sh up` (make slurm-up) and `slurm/cluster.sh down`
# (make slurm-down). slurmctld and slurmd run as root without systemd
# (proctrack/linuxproc, task/none), on 127.0.0.1, with 2 CPU slots in one partition,
# `debug`; slurmdbd keeps job accounting in a MariaDB of its own (sacct: submitit reads
# a job's state there, and sees a cancelled job end). Its state lives in
# $QTRAIN_SLURM_DIR (default /tmp/qtrain-slurm); its configs are written to /etc/slurm,
# where sbatch, squeue and sacct look for them.
set -euo pipefail

STATE=${QTRAIN_SLURM_DIR:-/tmp/qtrain-slurm}
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by qtrain's slurm/cluster.sh"
NODE=$(hostname -s)
SOCKET=/run/mysqld/mysqld.sock   # where slurmdbd's MySQL client looks for the server

install_packages() {
  if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
    echo "installing slurm-wlm, slurmdbd, munge and mariadb-server with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
  fi
}

write_config() {
  for file in "$CONF" "$DBD_CONF"; do
    if [[ -f $file ]] && ! grep -qF "$MARK" "$file"; then
      echo "$file exists and was not written by qtrain: not overwritten" >&2
      exit 1
    fi
  done
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
  cat >"$DBD_CONF" <<CONFIG
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
CONFIG
  chmod 600 "$DBD_CONF"
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
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
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

start_accounting() {
  # MariaDB as root, its data in $STATE/db, on its socket only (root logs in by socket).
  if ! pgrep -x mariadbd >/dev/null; then
    [[ -d $STATE/db/mysql ]] || mariadb-install-db --user=root --datadir="$STATE/db" >/dev/null
    mkdir -p "$(dirname "$SOCKET")"
    mariadbd --user=root --datadir="$STATE/db" --socket="$SOCKET" --skip-networking \
      --pid-file="$STATE/mariadb.pid" --log-error="$STATE/log/mariadb.log" >>"$STATE/log/mariadb.log" 2>&1 &
    for _ in $(seq 60); do [[ -S $SOCKET ]] && break; sleep 0.5; done
  fi
  pgrep -x slurmdbd >/dev/null || slurmdbd
  for _ in $(seq 60); do sacctmgr --noheader list cluster >/dev/null 2>&1 && break; sleep 0.5; done
  sacctmgr --noheader list cluster format=cluster | grep -qw qtrain || sacctmgr -i add cluster qtrain >/dev/null
}

up() {
  install_packages
  write_config
  start_munge
  start_accounting
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
  for daemon in slurmd slurmctld slurmdbd mariadbd; do
    pkill -x "$daemon" || true
  done
  for _ in $(seq 30); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || pgrep -x slurmdbd >/dev/null || pgrep -x mariadbd >/dev/null || break
    sleep 1
  done
  echo "SLURM is down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

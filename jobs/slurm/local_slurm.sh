#!/usr/bin/env bash
# A real single-node Slurm on localhost, for the tests and for trying the sbatch scripts without a
# cluster (../../shared/PLATFORM.md): munged (as user munge), slurmctld and slurmd (as root), all
# reading a slurm.conf written into a scratch directory; no init system and nothing under /etc
# is needed (except munge's key, which the munge package creates). Usage:
#
#   bash jobs/slurm/local_slurm.sh start    # installs slurm-wlm and munge if missing, starts
#                                           # the daemons, waits until the node is idle
#   export SLURM_CONF=/tmp/pref-slurm/slurm.conf     # (printed by start) then sbatch, squeue...
#   bash jobs/slurm/local_slurm.sh status
#   bash jobs/slurm/local_slurm.sh stop     # stops the daemons by their pid files
#
# Environment: PREF_SLURM_DIR (scratch directory, default /tmp/pref-slurm), PREF_SLURM_CPUS
# (default: the cores of this machine). Runs as root (the daemons need it).
# Exit codes: 0 done; 1 failure; 4 Slurm or munge cannot be installed (the tests skip then).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=jobs/setup.sh
source "$here/../setup.sh"

DIR="${PREF_SLURM_DIR:-/tmp/pref-slurm}"
CONF="$DIR/slurm.conf"
CPUS="${PREF_SLURM_CPUS:-$PREF_CORES}"
MUNGE_SOCKET=/run/munge/munge.socket.2  # Slurm's auth/munge uses munge's default socket

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_slurm() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null &&
    command -v sbatch >/dev/null; then
    return 0
  fi
  if ! (pref_ensure_packages slurm-wlm munge) >&2; then
    pref_log "error: cannot install slurm-wlm and munge"
    exit 4
  fi
}

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool"
  cat >"$CONF" <<EOF
# Written by jobs/slurm/local_slurm.sh: one node (this machine), one partition.
ClusterName=pref-local
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire + 1 s before it runs again (default 120 s).
AuthInfo=cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
EnforcePartLimits=ALL
# Requeued jobs run again as soon as possible; finished jobs stay visible to scontrol for 10 min.
MinJobAge=600
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if [ -S "$MUNGE_SOCKET" ] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    pref_log "munge: already running"
    return 0
  fi
  id munge >/dev/null 2>&1 || pref_die "no user munge (is the munge package installed?)"
  if [ ! -s /etc/munge/munge.key ]; then
    pref_log "munge: creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key --force
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge "$DIR/munge"
  chown munge:munge /run/munge "$DIR/munge"
  chmod 0755 /run/munge
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  runuser -u munge -- munged --force --socket="$MUNGE_SOCKET" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
  for _ in $(seq 100); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  pref_die "munged did not start (see $DIR/munge/munged.log)"
}

node_state() { scontrol show node localhost 2>/dev/null | sed -n 's/.*State=\([A-Z+_]*\).*/\1/p' | head -n1; }

start() {
  install_slurm
  mkdir -p "$DIR"
  if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
    pref_log "slurm: already running (SLURM_CONF=$CONF)"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  write_conf
  start_munge
  export SLURM_CONF="$CONF"
  alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF"
  alive "$DIR/slurmd.pid" || slurmd -f "$CONF" -N localhost
  local state=""
  for _ in $(seq 300); do
    state="$(node_state)"
    case "$state" in
      IDLE* | MIXED* | ALLOCATED*) break ;;
    esac
    sleep 0.1
  done
  case "$state" in
    IDLE* | MIXED* | ALLOCATED*) ;;
    *)
      pref_log "slurm: node state '${state:-unknown}' after 30 s; logs in $DIR"
      tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
      exit 1
      ;;
  esac
  pref_log "slurm: up, node localhost $state with $CPUS CPUs ($(sbatch --version)); SLURM_CONF=$CONF"
  echo "export SLURM_CONF=$CONF"
}

stop_pidfile() {
  local name="$1" file="$2"
  [ -f "$file" ] || return 0
  local pid
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      pref_log "$name (pid $pid) did not stop in 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    pref_log "stopped $name (pid $pid)"
  fi
  rm -f "$file"
}

stop() {
  stop_pidfile slurmd "$DIR/slurmd.pid"
  stop_pidfile slurmctld "$DIR/slurmctld.pid"
  stop_pidfile munged "$DIR/munge/munged.pid"
}

status() {
  local rc=0 d
  for d in slurmctld:"$DIR/slurmctld.pid" slurmd:"$DIR/slurmd.pid" munged:"$DIR/munge/munged.pid"; do
    if alive "${d#*:}"; then
      echo "${d%%:*}: running (pid $(cat "${d#*:}"))"
    else
      echo "${d%%:*}: not running"
      rc=1
    fi
  done
  if [ "$rc" -eq 0 ]; then
    SLURM_CONF="$CONF" sinfo
    echo "export SLURM_CONF=$CONF"
  fi
  return "$rc"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac

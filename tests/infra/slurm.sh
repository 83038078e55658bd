#!/usr/bin/env bash
# A throwaway single-node SLURM (Debian slurm-wlm 22.05 + munge) on 127.0.0.1, owned by DIR.
#
#   tests/infra/slurm.sh start DIR [CTLD_PORT SLURMD_PORT]   # prints SLURM_CONF=DIR/slurm.conf
#   SLURM_CONF=DIR/slurm.conf sbatch --wrap 'hostname'
#   tests/infra/slurm.sh stop DIR                            # cancels jobs, stops by PID file
#
# Everything (munge socket, state, spool, logs, PID files) lives under DIR, and the ports are
# arguments, so several test sessions on one machine run their own clusters side by side.
# See ../shared/INFRA-NOTES.md for why each slurm.conf setting is there. Needs root.
set -euo pipefail

cmd=${1:?usage: slurm.sh start|stop|status DIR [CTLD_PORT SLURMD_PORT]}
dir=${2:?usage: slurm.sh start|stop|status DIR [CTLD_PORT SLURMD_PORT]}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
ctld_port=${3:-6817}
slurmd_port=${4:-6818}
conf="$dir/slurm.conf"
sock="$dir/munge/munge.socket"

log() { echo "slurm.sh: $*" >&2; }

wait_for() { # seconds, then a command that must succeed
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.2
  done
}

start_munge() {
  # munged runs as root with its own key and socket under DIR: pytest's temporary directories
  # are 0700, which the munge user could not traverse, and a private key keeps sessions apart.
  mkdir -p "$dir/munge"
  chmod 0700 "$dir/munge"
  [ -s "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0600 "$dir/munge/munge.key"
  /usr/sbin/munged --force --socket="$sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  wait_for 10 bash -c "munge -S '$sock' -n | unmunge -S '$sock'" || {
    log "munged did not answer"; cat "$dir/munge/munged.log" >&2 || true; exit 1; }
}

write_conf() {
  local hw
  # CPUs, boards, sockets, cores, threads, memory as slurmd detects them (minus the NodeName).
  hw=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //')
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
  cat >"$conf" <<EOF
ClusterName=tdc$ctld_port
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MaxArraySize=10001
MaxJobCount=100000
MinJobAge=30
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost $hw State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start() {
  if [ -f "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null; then
    log "already running in $dir"; echo "SLURM_CONF=$conf"; return 0
  fi
  start_munge
  write_conf
  export SLURM_CONF="$conf"
  /usr/sbin/slurmctld -f "$conf" -i
  wait_for 20 scontrol ping || { log "slurmctld did not start"; tail -20 "$dir/log/slurmctld.log" >&2; exit 1; }
  /usr/sbin/slurmd -f "$conf" -N localhost
  wait_for 30 bash -c "sinfo -h -N -o '%T' | grep -Eq '^(idle|mixed|allocated)'" || {
    log "node did not come up"; tail -20 "$dir/log/slurmd.log" "$dir/log/slurmctld.log" >&2; exit 1; }
  echo "SLURM_CONF=$conf"
}

kill_pidfile() { # a PID file, then wait up to 10 s for the process to exit (then SIGKILL)
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  if [ -f "$conf" ] && [ -f "$dir/run/slurmctld.pid" ]; then
    SLURM_CONF="$conf" scancel --full --user="$(id -un)" 2>/dev/null || true
    SLURM_CONF="$conf" wait_for 15 bash -c '[ -z "$(squeue -h -o %i)" ]' || log "jobs still listed"
  fi
  kill_pidfile "$dir/run/slurmd.pid"
  kill_pidfile "$dir/run/slurmctld.pid"
  kill_pidfile "$dir/munge/munged.pid"
}

status() {
  SLURM_CONF="$conf" sinfo -N && SLURM_CONF="$conf" squeue
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) log "unknown command $cmd (start|stop|status)"; exit 2 ;;
esac

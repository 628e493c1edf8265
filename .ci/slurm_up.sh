#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine for the Slurm test tier (tests/slurm/): as root, without systemd.
#
#   .ci/slurm_up.sh DIR     # DIR: state, spool, logs and the daemons' PID files (created)
#   .ci/slurm_down.sh DIR   # stops the daemons by the PIDs this script wrote
#
# 1. installs Slurm 22.05 and munge from Debian's packages if missing (apt-get update once first);
# 2. writes /etc/slurm/slurm.conf for this machine: node = `hostname -s`, CPUs from nproc, RealMemory from free -m,
#    partitions $RSPO_CI_CPU_PARTITION (default) and $RSPO_CI_GPU_PARTITION on the one node, no accounting,
#    MinJobAge=600 so finished jobs stay visible to squeue/scontrol (the profile polls with squeue). The file must be
#    at /etc/slurm/slurm.conf: the executor plugin's jobstep strips SLURM_CONF before its inner srun. An existing
#    slurm.conf not written by this script is kept as slurm.conf.rspo-bak and restored by slurm_down.sh;
# 3. starts munged (as the munge user), slurmctld and slurmd, waits until the node is idle.
# Exit 0: running. Exit 2: cannot run here (not root, no apt, daemons already running) with the reason on stderr.
# Every step is bounded with `timeout -k`.
set -euo pipefail

DIR=${1:?usage: slurm_up.sh DIR}
CPU_PART=${RSPO_CI_CPU_PARTITION:-rspo-cpu}
GPU_PART=${RSPO_CI_GPU_PARTITION:-rspo-gpu}
CONF=/etc/slurm/slurm.conf
MARK="# written by rspo-bench .ci/slurm_up.sh"
say() { echo "slurm_up: $*" >&2; }
cannot() { say "cannot start Slurm here: $*"; exit 2; }

[ "$(id -u)" = 0 ] || cannot "not root (uid $(id -u)); the daemons and /etc/slurm need root"
t0=$(date +%s.%N)

# ---- 1. packages -------------------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v pgrep >/dev/null || ! command -v free >/dev/null; then
  command -v apt-get >/dev/null || cannot "Slurm is not installed and there is no apt-get"
  say "installing slurm-wlm, munge (and procps) from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  timeout -k 10 300 apt-get update -qq >&2
  timeout -k 10 600 apt-get install -y -qq --no-install-recommends slurm-wlm munge procps >&2
fi
t_install=$(date +%s.%N)

# ---- 2. config -------------------------------------------------------------------------------------------------------
if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
  cannot "slurmctld or slurmd is already running (pids: $(pgrep -x 'slurmctld|slurmd' | tr '\n' ' '))"
fi
mkdir -p "$DIR"/{state,spool,run,log} /etc/slurm
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(free -m | awk '/^Mem:/ {print $2}')
REAL_MEM=$(( MEM * 9 / 10 ))   # leave room for the OS; jobs ask for less than this
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  [ -e "$CONF.rspo-bak" ] || cp -p "$CONF" "$CONF.rspo-bak"
fi
cat > "$CONF" <<EOF
$MARK for $DIR
ClusterName=rspo-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
KillWait=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$HOST CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$CPU_PART Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PART Nodes=ALL Default=NO MaxTime=INFINITE State=UP
EOF

# ---- 3. daemons -------------------------------------------------------------------------------------------------------
[ -s /etc/munge/munge.key ] || { timeout -k 5 30 mungekey --create >&2 && chown munge:munge /etc/munge/munge.key; }
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! timeout -k 2 5 munge -n </dev/null >/dev/null 2>&1; then
  # munged daemonises and writes /run/munge/munged.pid; slurm_down.sh stops it only if this script started it
  timeout -k 5 30 runuser -u munge -- /usr/sbin/munged >&2
  cp /run/munge/munged.pid "$DIR/run/munged.started"
fi
timeout -k 5 30 slurmctld -i >&2
timeout -k 5 30 slurmd >&2
for _ in $(seq 1 300); do
  state=$(timeout -k 2 5 sinfo -h -N -o '%T' -n "$HOST" 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 0.1
done
[ "$state" = idle ] || { say "node $HOST is '${state:-unknown}', not idle; see $DIR/log/"; exit 1; }
t_up=$(date +%s.%N)
awk -v a="$t0" -v b="$t_install" -v c="$t_up" -v rest="node=$HOST cpus=$CPUS real_memory_mb=$REAL_MEM \
partitions=$CPU_PART,$GPU_PART" 'BEGIN { printf "install_s=%.1f start_s=%.1f %s\n", b - a, c - b, rest }' \
  | tee "$DIR/up.txt"

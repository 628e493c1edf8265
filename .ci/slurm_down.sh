#!/usr/bin/env bash
# Stop the one-node Slurm of .ci/slurm_up.sh DIR: slurmd, slurmctld and (if slurm_up.sh started it) munged, each by
# the PID in DIR/run/, SIGTERM then SIGKILL after 10 s; restore the slurm.conf that slurm_up.sh set aside, or
# remove the one it wrote.
set -uo pipefail
DIR=${1:?usage: slurm_down.sh DIR}
stop() {  # stop NAME PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
  local name=$1 file=$2 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "slurm_down: $name ($pid) ignored SIGTERM, SIGKILL" >&2; kill -KILL "$pid"; }
  fi
  echo "slurm_down: stopped $name ($pid)" >&2
}
stop slurmd "$DIR/run/slurmd.pid"
stop slurmctld "$DIR/run/slurmctld.pid"
stop munged "$DIR/run/munged.started"
# Leave no slurm.conf naming a stopped controller: with one, every scontrol call (the executor plugin makes one at
# import) waits ~9 s for it; without one it fails at once.
CONF=/etc/slurm/slurm.conf
if [ -f "$CONF.rspo-bak" ]; then
  mv -f "$CONF.rspo-bak" "$CONF"
elif grep -qF "# written by rspo-bench .ci/slurm_up.sh for $DIR" "$CONF" 2>/dev/null; then
  rm -f "$CONF"
fi
exit 0

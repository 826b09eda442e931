#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine, for the multi-host
# container tests (test/containers/). Idempotent: does nothing when
# `docker info` already works. As root it starts dockerd in the background
# (log: /var/log/pflex-dockerd.log, pidfile: /var/run/pflex-dockerd.pid);
# otherwise it only says what to do. Never fails the caller: without an
# engine the container tests skip with a message.
set -uo pipefail

LOG=${PFLEX_DOCKERD_LOG:-/var/log/pflex-dockerd.log}
PIDFILE=${PFLEX_DOCKERD_PIDFILE:-/var/run/pflex-dockerd.pid}
WAIT_S=${PFLEX_DOCKERD_WAIT_S:-60}
export PATH="$PATH:/usr/sbin:/sbin"

engine_up() { docker info >/dev/null 2>&1; }

if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-dockerd: docker/dockerd not installed (apt-get install docker.io); container tests will skip" >&2
  exit 0
fi
if engine_up; then
  echo "ensure-dockerd: docker engine already running"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-dockerd: no docker engine answers; as root run: bash $0 (or: systemctl start docker)" >&2
  exit 0
fi

# Another caller may be starting it right now (tap runs files in parallel;
# install-test-deps may run twice): one starter at a time.
exec 9>"${PIDFILE}.lock"
flock -w "$WAIT_S" 9 || { echo "ensure-dockerd: could not take ${PIDFILE}.lock" >&2; exit 0; }
if engine_up; then
  echo "ensure-dockerd: docker engine already running"
  exit 0
fi

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

if ! pid=$(running_pid); then
  # overlay2 when the kernel offers it (dockerd falls back by itself
  # otherwise); vfs can be forced with PFLEX_DOCKERD_STORAGE_DRIVER=vfs.
  args=(--pidfile "$PIDFILE")
  [ -n "${PFLEX_DOCKERD_STORAGE_DRIVER:-}" ] && args+=(--storage-driver "$PFLEX_DOCKERD_STORAGE_DRIVER")
  # shellcheck disable=SC2206
  [ -n "${PFLEX_DOCKERD_FLAGS:-}" ] && args+=(${PFLEX_DOCKERD_FLAGS})
  echo "ensure-dockerd: starting dockerd ${args[*]} (log: $LOG)"
  mkdir -p "$(dirname "$LOG")"
  nohup setsid dockerd "${args[@]}" >>"$LOG" 2>&1 </dev/null 9>&- &
  pid=$!
fi

for _ in $(seq 1 $((WAIT_S * 4))); do
  if engine_up; then
    echo "ensure-dockerd: docker engine up (pid $pid, storage driver $(docker info --format '{{.Driver}}' 2>/dev/null))"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.25
done
echo "ensure-dockerd: dockerd did not come up; last lines of $LOG:" >&2
tail -n 30 "$LOG" >&2
exit 0

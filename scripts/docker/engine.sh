#!/usr/bin/env bash
# Make a Docker engine answer on this machine, for the container tests (and CI).
#
#   scripts/docker/engine.sh start    install Debian's docker.io if dockerd is missing, and Debian's docker-compose
#                                     (1.29, for `python -m stack compose` files) if that is missing; if no daemon
#                                     answers, start `dockerd --storage-driver=vfs` in the background and wait for it
#   scripts/docker/engine.sh stop     stop the daemon, but only one that this script started
#   scripts/docker/engine.sh status   say whether a daemon answers and who started it (exit 0 yes, 3 no)
#
# Idempotent and non-interactive: `start` with a daemon already answering (systemd's, a developer's, ours from an
# earlier run) does nothing; `stop` without our daemon does nothing. Starting or installing needs root.
#
# Why vfs: the machines this runs on (CI, developers' VMs, nested containers) may lack a usable overlayfs for
# dockerd; vfs works everywhere, at the price of a full copy per image layer (see docker/IMAGES.md, "vfs quirks").
#
# Environment:
#   LLS_DOCKER_STATE_DIR    pidfile, ownership marker and log (default /var/tmp/local-llm-stack/dockerd)
#   LLS_DOCKER_START_TIMEOUT seconds to wait for `docker info` (default 120)
#   LLS_DOCKERD_DATA_ROOT   --data-root for our dockerd (default: dockerd's, /var/lib/docker; kept between runs,
#                           so the images built by build-images.sh stay cached)
#   LLS_DOCKERD_ARGS        extra dockerd arguments (word-split)
set -euo pipefail

STATE_DIR="${LLS_DOCKER_STATE_DIR:-/var/tmp/local-llm-stack/dockerd}"
PIDFILE="$STATE_DIR/dockerd.pid"     # written by dockerd itself (--pidfile)
OWNED="$STATE_DIR/started-by-us"     # "<pid> <start time in clock ticks>" of the dockerd this script started
LOG="$STATE_DIR/dockerd.log"
LOCK="$STATE_DIR/lock"
START_TIMEOUT="${LLS_DOCKER_START_TIMEOUT:-120}"
STOP_TIMEOUT=60

log() { printf '[engine] %s\n' "$*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }

daemon_answers() { command -v docker >/dev/null 2>&1 && timeout 15 docker info >/dev/null 2>&1; }

proc_start_time() {  # field 22 of /proc/PID/stat (after the parenthesised comm, which may contain spaces)
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  # shellcheck disable=SC2086
  set -- $stat
  echo "${20}"
}

owned_pid() {  # prints the pid of the dockerd this script started, if it is still that process
  [[ -f "$OWNED" ]] || return 1
  local pid start
  read -r pid start <"$OWNED" || return 1
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] || return 1
  [[ "$(proc_start_time "$pid")" == "$start" ]] || return 1
  echo "$pid"
}

with_lock() {
  mkdir -p "$STATE_DIR"
  exec 9>"$LOCK"
  flock -w 300 9 || die "another engine.sh holds $LOCK"
}

ensure_installed() {
  if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "dockerd/docker missing and not root: install Debian's docker.io (apt-get)" 2
  command -v apt-get >/dev/null 2>&1 || die "dockerd/docker missing and no apt-get to install docker.io" 2
  log "installing Debian's docker.io (dockerd, containerd, runc, iptables)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  # The package's postinst tries to start the systemd service; where that works, its daemon answers and we
  # leave it alone; elsewhere (no systemd, policy-rc.d) we start our own below.
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends docker.io >/dev/null
  command -v dockerd >/dev/null 2>&1 || die "docker.io installed but dockerd is not on PATH"
}

ensure_compose() {  # best effort: the compose tests say what is missing when this could not install it
  command -v docker-compose >/dev/null 2>&1 && return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "WARNING: docker-compose missing and not root with apt-get: install Debian's docker-compose package"
    return 0
  fi
  log "installing Debian's docker-compose"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends docker-compose >/dev/null ||
      log "WARNING: could not install docker-compose"
  fi
}

cmd_start() {
  with_lock
  local pid
  ensure_compose
  if daemon_answers; then
    if pid="$(owned_pid)"; then
      log "dockerd already running (started by engine.sh, pid $pid)"
    else
      log "a Docker daemon already answers (not started by engine.sh); using it"
    fi
    return 0
  fi
  ensure_installed
  if daemon_answers; then  # docker.io's postinst started one
    log "a Docker daemon answers after installing docker.io; using it"
    return 0
  fi
  if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != unix:///var/run/docker.sock ]]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local dockerd for it" 2
  fi
  [[ $(id -u) -eq 0 ]] || die "no Docker daemon answers and starting dockerd needs root" 2
  if pid="$(owned_pid)"; then
    # Ours, alive, but not answering (still starting, or wedged): wait for it once more below.
    log "dockerd (pid $pid, ours) is running but does not answer yet; waiting"
  else
    local args=(--storage-driver=vfs --pidfile "$PIDFILE")
    [[ -n "${LLS_DOCKERD_DATA_ROOT:-}" ]] && args+=(--data-root "$LLS_DOCKERD_DATA_ROOT")
    # shellcheck disable=SC2206
    [[ -n "${LLS_DOCKERD_ARGS:-}" ]] && args+=(${LLS_DOCKERD_ARGS})
    log "starting dockerd ${args[*]} (log: $LOG)"
    printf '\n=== %s engine.sh start: dockerd %s\n' "$(date -u +%FT%TZ)" "${args[*]}" >>"$LOG"
    # setsid: its own session, so a Ctrl-C aimed at the test run does not reach it; no stdin.
    rm -f "$PIDFILE"
    setsid dockerd "${args[@]}" </dev/null >>"$LOG" 2>&1 9>&- &
    local launcher=$! start="" t_pid=$SECONDS
    # dockerd writes its pidfile early; that pid (not $!, in case setsid had to fork) is the one we own.
    until [[ -s "$PIDFILE" ]] && pid="$(cat "$PIDFILE")" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; do
      if ! kill -0 "$launcher" 2>/dev/null && [[ ! -s "$PIDFILE" ]]; then
        sleep 1  # a forked setsid exits at once; give its child a moment to write the pidfile
        [[ -s "$PIDFILE" ]] && continue
        tail -n 30 "$LOG" >&2
        die "dockerd exited at once (log above, full log: $LOG)"
      fi
      if (( SECONDS - t_pid > 30 )); then
        tail -n 30 "$LOG" >&2
        die "dockerd did not start (no live pid in $PIDFILE)"
      fi
      sleep 0.1
    done
    start="$(proc_start_time "$pid")"
    echo "$pid $start" >"$OWNED"
  fi
  local t0=$SECONDS
  until daemon_answers; do
    if ! owned_pid >/dev/null; then
      tail -n 40 "$LOG" >&2
      rm -f "$OWNED"
      die "dockerd exited before answering (log above, full log: $LOG)"
    fi
    if (( SECONDS - t0 > START_TIMEOUT )); then
      tail -n 40 "$LOG" >&2
      die "dockerd did not answer within ${START_TIMEOUT}s (log: $LOG); it is left running, \`$0 stop\` stops it"
    fi
    sleep 0.5
  done
  log "dockerd answers after $(( SECONDS - t0 ))s (pid $(owned_pid), storage driver $(docker info -f '{{.Driver}}'))"
}

cmd_stop() {
  with_lock
  local pid
  if ! pid="$(owned_pid)"; then
    rm -f "$OWNED"
    if daemon_answers; then
      log "the running Docker daemon was not started by engine.sh; leaving it running"
    else
      log "no dockerd started by engine.sh is running"
    fi
    return 0
  fi
  log "stopping dockerd (pid $pid); it stops its containers first"
  kill -TERM "$pid"
  local t0=$SECONDS
  while [[ -d "/proc/$pid" ]] && owned_pid >/dev/null; do
    if (( SECONDS - t0 > STOP_TIMEOUT )); then
      log "dockerd still running after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  rm -f "$OWNED"
  log "dockerd stopped after $(( SECONDS - t0 ))s"
}

cmd_status() {
  local pid who="not started by engine.sh"
  if pid="$(owned_pid)"; then who="started by engine.sh, pid $pid"; fi
  if daemon_answers; then
    local server driver
    server="$(docker version -f '{{.Server.Version}}' 2>/dev/null)"
    driver="$(docker info -f '{{.Driver}}' 2>/dev/null)"
    echo "running ($who; server $server, storage driver $driver)"
    return 0
  fi
  if [[ -n "${pid:-}" ]]; then
    echo "not answering ($who; log: $LOG)"
  else
    echo "not running"
  fi
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 64 ;;
esac

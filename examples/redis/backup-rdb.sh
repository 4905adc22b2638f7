#!/bin/sh
# Redis RDB backup: asks the server for a fresh snapshot (BGSAVE), waits until
# that snapshot is on disk and succeeded, then copies the RDB file gzip-
# compressed into one file in BACKUP_DIR; reported to the UBackup agent through
# BACK_LOG (always a full backup, so the agent section has no last_all_log):
#   ok                       wrong
#   <file name>              <one-line reason>
#
# POSIX sh. Run it on the Redis host: it reads the RDB file from the server's
# `dir` (CONFIG GET dir / dbfilename, or REDIS_RDB_FILE when CONFIG is renamed).
# Agent config: script = sh /path/backup-rdb.sh
#
# Environment (defaults in brackets):
#   BACKUP_DIR       where the backup files go [/data/backup/redis]
#   BACK_LOG         the agent's back_log [/var/log/ubackup/redis.log]
#   NAME_PREFIX      file names are <prefix>_<time>.rdb.gz [redis]
#   REDIS_HOST       [127.0.0.1]
#   REDIS_PORT       [6379]
#   REDIS_SOCKET     unix socket; overrides host and port
#   REDIS_USER       ACL user (Redis 6+)
#   REDISCLI_AUTH    the password (read by redis-cli from the environment, never put on a command line)
#   REDIS_RDB_FILE   the RDB file's path, when CONFIG GET is not allowed [asked from the server]
#   BGSAVE_TIMEOUT   seconds to wait for the snapshot [3600]
#   POLL_SECONDS     pause between checks [0.2]
#   REDIS_CLI        [redis-cli]
#   TMPDIR           scratch space for small files [/tmp]
set -eu

BACKUP_DIR=${BACKUP_DIR:-/data/backup/redis}
BACK_LOG=${BACK_LOG:-/var/log/ubackup/redis.log}
NAME_PREFIX=${NAME_PREFIX:-redis}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
REDIS_SOCKET=${REDIS_SOCKET:-}
REDIS_USER=${REDIS_USER:-}
REDIS_RDB_FILE=${REDIS_RDB_FILE:-}
BGSAVE_TIMEOUT=${BGSAVE_TIMEOUT:-3600}
POLL_SECONDS=${POLL_SECONDS:-0.2}
REDIS_CLI=${REDIS_CLI:-redis-cli}

# ---------------------------------------------------------------------------
# The back_log contract: every exit path writes BACK_LOG.

SCRIPT_NAME=backup-rdb
# shellcheck source=../lib/back-log.sh
. "$(dirname -- "$0")/../lib/back-log.sh"

STEP="creating a scratch directory"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ubackup-redis.XXXXXX")

# ---------------------------------------------------------------------------
# Settings and helpers

case "$NAME_PREFIX" in
  '' | -* | *[!A-Za-z0-9._-]*) fail "NAME_PREFIX may only have letters, digits, '.', '_' and '-', got \"$NAME_PREFIX\"" ;;
esac
case "$BGSAVE_TIMEOUT" in
  '' | *[!0-9]*) fail "BGSAVE_TIMEOUT must be a number of seconds, got \"$BGSAVE_TIMEOUT\"" ;;
esac
command -v "$REDIS_CLI" >/dev/null 2>&1 || fail "$REDIS_CLI is not installed (Debian/Ubuntu: apt-get install redis-tools)"

# redis-cli's connection options, kept in "$@".
set --
if [ -n "$REDIS_SOCKET" ]; then
  set -- -s "$REDIS_SOCKET"
else
  set -- -h "$REDIS_HOST" -p "$REDIS_PORT"
fi
[ -z "$REDIS_USER" ] || set -- "$@" --user "$REDIS_USER"
set -- "$@" --no-auth-warning

# rcli CONNECTION... COMMAND [ARG...]: the reply goes to $SCRATCH/reply (and
# its first line to $REPLY1). redis-cli exits 0 on an error reply, so a reply
# that starts with an error code fails the step too (check_reply).
rcli() {
  "$REDIS_CLI" "$@" 2>"$SCRATCH/stderr" >"$SCRATCH/raw" || {
    _rc=$?
    cat "$SCRATCH/raw" >>"$SCRATCH/stderr"
    fail "$STEP failed (exit $_rc): $(error_hint "$SCRATCH/stderr")"
  }
  tr -d '\r' <"$SCRATCH/raw" >"$SCRATCH/reply"
  REPLY1=$(sed -n 1p "$SCRATCH/reply")
}

check_reply() {
  case "$1" in
    ERR* | NOAUTH* | WRONGPASS* | NOPERM* | LOADING* | MISCONF* | READONLY* | BUSY* | MASTERDOWN*)
      fail "$STEP: the server answered: $(printf '%s' "$1" | one_line)" ;;
  esac
}

info_field() { sed -n "s/^$1://p" "$SCRATCH/info"; }

persistence_info() {
  rcli "$@" INFO persistence
  check_reply "$REPLY1"
  mv -f -- "$SCRATCH/reply" "$SCRATCH/info"
}

pause() { sleep "$POLL_SECONDS" 2>/dev/null || sleep 1; }

# ---------------------------------------------------------------------------
# Snapshot

STEP="connecting to Redis"
persistence_info "$@"
SAVES_BEFORE=$(info_field rdb_saves)
LAST_SAVE_BEFORE=$(info_field rdb_last_save_time)
[ -n "$LAST_SAVE_BEFORE" ] || fail "INFO persistence has no rdb_last_save_time: is this a Redis server?"
DEADLINE=$(($(date +%s) + BGSAVE_TIMEOUT))

# Redis before 7.0 has no rdb_saves counter: there the snapshot is recognised
# by LASTSAVE changing, which has a resolution of one second, so wait until the
# server's clock has left the second of the previous save.
if [ -z "$SAVES_BEFORE" ]; then
  STEP="waiting for the server clock to pass the last save"
  while :; do
    rcli "$@" TIME
    check_reply "$REPLY1"
    [ "$REPLY1" -le "$LAST_SAVE_BEFORE" ] || break
    [ "$(date +%s)" -lt "$DEADLINE" ] || fail "timed out waiting for the server clock"
    pause
  done
fi

# BGSAVE SCHEDULE: when an AOF rewrite is running, the save starts right after
# it. A snapshot already in progress (from the save rules) may predate this run:
# wait for it to end, then ask again.
STEP="BGSAVE"
SCHEDULED=0
while :; do
  rcli "$@" BGSAVE SCHEDULE
  case "$REPLY1" in
    ERR*"syntax error"* | ERR*"wrong number"*)
      # Before Redis 3.2.2 BGSAVE takes no argument.
      rcli "$@" BGSAVE
      ;;
  esac
  case "$REPLY1" in
    *"already in progress"*) ;;
    "Background saving started"*) break ;;
    "Background saving scheduled"*)
      SCHEDULED=1
      break
      ;;
    *)
      check_reply "$REPLY1"
      fail "BGSAVE: unexpected reply: $(printf '%s' "$REPLY1" | one_line)"
      ;;
  esac
  [ "$(date +%s)" -lt "$DEADLINE" ] || fail "timed out after ${BGSAVE_TIMEOUT}s: another snapshot was still in progress"
  pause
done

STEP="waiting for BGSAVE"
while :; do
  persistence_info "$@"
  if [ "$(info_field rdb_bgsave_in_progress)" = 0 ]; then
    if [ -n "$SAVES_BEFORE" ]; then
      [ "$(info_field rdb_saves)" -le "$SAVES_BEFORE" ] || break
    else
      [ "$(info_field rdb_last_save_time)" = "$LAST_SAVE_BEFORE" ] || break
    fi
    # No save in progress and none done since it started: it failed (a
    # scheduled save may not have started yet, and the status is an older one).
    [ "$SCHEDULED" = 1 ] || [ "$(info_field rdb_last_bgsave_status)" = ok ] ||
      fail "BGSAVE failed: rdb_last_bgsave_status is $(info_field rdb_last_bgsave_status) (see the Redis log)"
  fi
  [ "$(date +%s)" -lt "$DEADLINE" ] || fail "timed out after ${BGSAVE_TIMEOUT}s waiting for BGSAVE to finish"
  pause
done
STATUS=$(info_field rdb_last_bgsave_status)
[ "$STATUS" = ok ] || fail "BGSAVE failed: rdb_last_bgsave_status is $STATUS (see the Redis log)"

# ---------------------------------------------------------------------------
# Copy and compress

if [ -z "$REDIS_RDB_FILE" ]; then
  STEP="CONFIG GET dir"
  rcli "$@" CONFIG GET dir
  check_reply "$REPLY1"
  dir=$(sed -n 2p "$SCRATCH/reply")
  STEP="CONFIG GET dbfilename"
  rcli "$@" CONFIG GET dbfilename
  check_reply "$REPLY1"
  dbfilename=$(sed -n 2p "$SCRATCH/reply")
  [ -n "$dir" ] && [ -n "$dbfilename" ] ||
    fail "CONFIG GET returned no dir/dbfilename (is CONFIG renamed? set REDIS_RDB_FILE)"
  REDIS_RDB_FILE="$dir/$dbfilename"
fi
[ -f "$REDIS_RDB_FILE" ] || fail "the RDB file $REDIS_RDB_FILE does not exist (is this the Redis host? set REDIS_RDB_FILE)"
[ -r "$REDIS_RDB_FILE" ] || fail "the RDB file $REDIS_RDB_FILE is not readable by $(id -un)"

STEP="creating $BACKUP_DIR"
mkdir -p -- "$BACKUP_DIR"
STAMP=$(date +%Y%m%d_%H%M%S)
NAME="${NAME_PREFIX}_${STAMP}.rdb.gz"
[ ! -e "$BACKUP_DIR/$NAME" ] || NAME="${NAME_PREFIX}_${STAMP}_$$.rdb.gz"
PARTIAL="$BACKUP_DIR/.$NAME.partial"

# Redis replaces the RDB file by rename, so one open file is one whole snapshot.
STEP="compressing $REDIS_RDB_FILE into $NAME"
gzip -c <"$REDIS_RDB_FILE" >"$PARTIAL" 2>"$SCRATCH/stderr"
STEP="checking $NAME"
MAGIC=$(gzip -dc "$PARTIAL" 2>/dev/null | dd bs=5 count=1 2>/dev/null || true)
[ "$MAGIC" = REDIS ] || fail "$REDIS_RDB_FILE is not an RDB file (it does not start with REDIS)"
sync -- "$PARTIAL" 2>/dev/null || true
STEP="renaming $PARTIAL to $NAME"
mv -f -- "$PARTIAL" "$BACKUP_DIR/$NAME" 2>"$SCRATCH/stderr"
PARTIAL=""

STEP="writing back_log"
write_log "$BACK_LOG" ok "$NAME"
REPORTED=1
echo "backup-rdb: ok $NAME"

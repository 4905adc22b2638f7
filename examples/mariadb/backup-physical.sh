#!/bin/sh
# MariaDB physical backup with mariadb-backup: a full backup once a day at
# FULL_HOUR (or whenever there is no usable base full), an incremental on top
# of the previous backup otherwise. Each run packs its backup into one file in
# BACKUP_DIR and reports it to the UBackup agent through BACK_LOG (and, for a
# full, LAST_ALL_LOG), the two-line contract:
#   ok                       wrong
#   <file name>              <one-line reason>
#
# POSIX sh. Usage (agent config: script = sh /path/backup-physical.sh [/etc/my.cnf]):
#   backup-physical.sh [DEFAULTS_FILE]
#
# Environment (defaults in brackets):
#   BACKUP_DIR        where the backup files go [/data/backup/mariadb]
#   BACK_LOG          the agent's back_log [/var/log/ubackup/mariadb.log]
#   LAST_ALL_LOG      the agent's last_all_log [/var/log/ubackup/mariadb_last_full.log]
#   FULL_HOUR         hour of the day (0-23) for the daily full [04]
#   FORCE_FULL        1 = make a full backup now [0]
#   STATE_DIR         where the chain's LSN state is kept [$BACKUP_DIR/.mariadb-backup-state]
#   NAME_PREFIX       file names are <prefix>_full_<time>.tar.gz / <prefix>_incr_<time>.tar.gz [mariadb]
#   COMPRESS          gzip | zstd | none [gzip]
#   MARIADB_DEFAULTS_FILE        option file read first and only (like the old script's /etc/my.cnf) [$1]
#   MARIADB_DEFAULTS_EXTRA_FILE  option file read after the others, e.g. [client] user/password
#   MARIADB_HOST, MARIADB_PORT, MARIADB_SOCKET, MARIADB_USER, MARIADB_DATADIR  connection overrides
#   MARIADB_BACKUP    the mariadb-backup program [mariadb-backup, else mariabackup]
#   TMPDIR            scratch space for small files [/tmp]
# Passwords: put them in an option file ([client] password=...) named by
# MARIADB_DEFAULTS_EXTRA_FILE, never on a command line.
set -eu

BACKUP_DIR=${BACKUP_DIR:-/data/backup/mariadb}
BACK_LOG=${BACK_LOG:-/var/log/ubackup/mariadb.log}
LAST_ALL_LOG=${LAST_ALL_LOG:-/var/log/ubackup/mariadb_last_full.log}
FULL_HOUR=${FULL_HOUR:-04}
FORCE_FULL=${FORCE_FULL:-0}
STATE_DIR=${STATE_DIR:-$BACKUP_DIR/.mariadb-backup-state}
NAME_PREFIX=${NAME_PREFIX:-mariadb}
COMPRESS=${COMPRESS:-gzip}
MARIADB_DEFAULTS_FILE=${MARIADB_DEFAULTS_FILE:-${1:-}}
MARIADB_DEFAULTS_EXTRA_FILE=${MARIADB_DEFAULTS_EXTRA_FILE:-}
MARIADB_HOST=${MARIADB_HOST:-}
MARIADB_PORT=${MARIADB_PORT:-}
MARIADB_SOCKET=${MARIADB_SOCKET:-}
MARIADB_USER=${MARIADB_USER:-}
MARIADB_DATADIR=${MARIADB_DATADIR:-}
MARIADB_BACKUP=${MARIADB_BACKUP:-}

# ---------------------------------------------------------------------------
# The back_log contract. Every exit path writes BACK_LOG: `ok` + file name on
# success, `wrong` + a one-line reason otherwise (the EXIT trap covers errors
# that set -e turns into an exit, and TERM/INT/HUP).

umask 077
STEP="starting"
REPORTED=0
SIGNAL=""
IS_FULL=0
SCRATCH=""
WORK=""
PARTIAL=""

one_line() {
  tr '\r\n\t' '   ' | sed -e 's/^\[[0-9]*\] [0-9-]* [0-9:]* //' -e 's/  */ /g' -e 's/^ //' -e 's/ $//' | cut -c1-400
}

# The most telling line of a command's error output.
error_hint() {
  [ -s "$1" ] || { printf 'no error output'; return 0; }
  _hint=$(grep -i -E 'error|fail|denied|refused|cannot|can.t|unable|no such|not found|invalid' "$1" | tail -n 1 || true)
  [ -n "$_hint" ] || _hint=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true)
  printf '%s' "$_hint" | one_line
}

# write_log FILE STATUS TEXT: the two lines, written to a temp name and renamed.
write_log() {
  mkdir -p -- "$(dirname -- "$1")" 2>/dev/null || true
  printf '%s\n%s\n' "$2" "$3" >"$1.tmp.$$" && mv -f -- "$1.tmp.$$" "$1"
}

fail() {
  _reason=$(printf '%s' "$1" | one_line)
  printf 'backup-physical: %s\n' "$_reason" >&2
  REPORTED=1
  # A failed full also fails last_all_log, so no incremental is taken on a broken base.
  if [ "$IS_FULL" = 1 ]; then write_log "$LAST_ALL_LOG" wrong "$_reason" || true; fi
  write_log "$BACK_LOG" wrong "$_reason" || true
  exit 1
}

# run DESCRIPTION COMMAND [ARG...]: runs the command, keeps its stderr for the reason.
run() {
  STEP=$1
  shift
  "$@" 2>"$SCRATCH/stderr" || {
    _rc=$?
    tail -n 30 "$SCRATCH/stderr" >&2
    fail "$STEP failed (exit $_rc): $(error_hint "$SCRATCH/stderr")"
  }
}

on_exit() {
  _rc=$?
  trap - EXIT
  if [ "$REPORTED" != 1 ]; then
    [ "$_rc" -ne 0 ] || _rc=1
    if [ -n "$SIGNAL" ]; then
      _reason="interrupted by $SIGNAL during: $STEP"
    else
      _reason="$STEP failed (exit $_rc)"
      if [ -n "$SCRATCH" ] && [ -s "$SCRATCH/stderr" ]; then
        _reason="$_reason: $(error_hint "$SCRATCH/stderr")"
      fi
    fi
    printf 'backup-physical: %s\n' "$_reason" >&2
    if [ "$IS_FULL" = 1 ]; then write_log "$LAST_ALL_LOG" wrong "$_reason" || true; fi
    write_log "$BACK_LOG" wrong "$_reason" || true
  fi
  [ -z "$PARTIAL" ] || rm -f -- "$PARTIAL"
  [ -z "$WORK" ] || rm -rf -- "$WORK"
  [ -z "$SCRATCH" ] || rm -rf -- "$SCRATCH"
  exit "$_rc"
}
trap on_exit EXIT
trap 'SIGNAL=SIGTERM; exit 143' TERM
trap 'SIGNAL=SIGINT; exit 130' INT
trap 'SIGNAL=SIGHUP; exit 129' HUP

STEP="creating a scratch directory"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ubackup-mariadb.XXXXXX")

# ---------------------------------------------------------------------------
# Settings

case "$FULL_HOUR" in
  [0-9] | [0-1][0-9] | 2[0-3]) ;;
  *) fail "FULL_HOUR must be an hour from 0 to 23, got \"$FULL_HOUR\"" ;;
esac
case "$NAME_PREFIX" in
  '' | -* | *[!A-Za-z0-9._-]*) fail "NAME_PREFIX may only have letters, digits, '.', '_' and '-', got \"$NAME_PREFIX\"" ;;
esac
case "$COMPRESS" in
  gzip) SUFFIX=.tar.gz ;;
  zstd) SUFFIX=.tar.zst ;;
  none) SUFFIX=.tar ;;
  *) fail "COMPRESS must be gzip, zstd or none, got \"$COMPRESS\"" ;;
esac
if [ -z "$MARIADB_BACKUP" ]; then
  if command -v mariadb-backup >/dev/null 2>&1; then
    MARIADB_BACKUP=mariadb-backup
  elif command -v mariabackup >/dev/null 2>&1; then
    MARIADB_BACKUP=mariabackup
  else
    fail "mariadb-backup is not installed (Debian/Ubuntu: apt-get install mariadb-backup)"
  fi
fi
if [ "$COMPRESS" = zstd ] && ! command -v zstd >/dev/null 2>&1; then
  fail "COMPRESS=zstd but zstd is not installed"
fi

STEP="creating $BACKUP_DIR"
mkdir -p -- "$BACKUP_DIR" "$STATE_DIR"

# One run at a time per state directory (the lock goes away with the process).
if command -v flock >/dev/null 2>&1; then
  STEP="locking $STATE_DIR"
  exec 9>"$STATE_DIR/lock"
  flock -n 9 || fail "another backup run holds $STATE_DIR/lock"
  # Holding the lock, anything a killed run (SIGKILL, e.g. on the agent's
  # timeout) left behind is stale.
  STEP="removing what an interrupted run left in $BACKUP_DIR"
  for stale in "$BACKUP_DIR/.$NAME_PREFIX.work."* "$BACKUP_DIR/.${NAME_PREFIX}_"*.partial; do
    [ ! -e "$stale" ] || rm -rf -- "$stale"
  done
fi

# Connection options, as the positional parameters (no string is ever re-parsed).
set --
[ -z "$MARIADB_DEFAULTS_FILE" ] || set -- "$@" "--defaults-file=$MARIADB_DEFAULTS_FILE"
[ -z "$MARIADB_DEFAULTS_EXTRA_FILE" ] || set -- "$@" "--defaults-extra-file=$MARIADB_DEFAULTS_EXTRA_FILE"
[ -z "$MARIADB_HOST" ] || set -- "$@" "--host=$MARIADB_HOST"
[ -z "$MARIADB_PORT" ] || set -- "$@" "--port=$MARIADB_PORT"
[ -z "$MARIADB_SOCKET" ] || set -- "$@" "--socket=$MARIADB_SOCKET"
[ -z "$MARIADB_USER" ] || set -- "$@" "--user=$MARIADB_USER"
[ -z "$MARIADB_DATADIR" ] || set -- "$@" "--datadir=$MARIADB_DATADIR"

# ---------------------------------------------------------------------------
# Full or incremental?

# The chain's state: last/ holds xtrabackup_checkpoints of the newest backup of
# the chain (the --incremental-basedir of the next one), full_name the base
# full's file name, full_hour the hour (YYYYmmddHH) it was made.
read_first_line() { [ -f "$1" ] && sed -n 1p -- "$1" | tr -d '\r' || true; }
log_line() { [ -f "$1" ] && sed -n "$2p" -- "$1" | tr -d '\r' | sed -e 's/[[:space:]]*$//' || true; }

NOW_HOUR=$(date +%Y%m%d%H)
HOUR=$(date +%H)
HOUR=${HOUR#0}
WANT_HOUR=${FULL_HOUR#0}
BASE_NAME=$(read_first_line "$STATE_DIR/full_name")
FULL_MADE_HOUR=$(read_first_line "$STATE_DIR/full_hour")

WHY_FULL=""
if [ "$FORCE_FULL" = 1 ]; then
  WHY_FULL="FORCE_FULL=1"
elif [ ! -f "$STATE_DIR/last/xtrabackup_checkpoints" ] || [ -z "$BASE_NAME" ]; then
  WHY_FULL="no base full in $STATE_DIR"
elif [ "$(log_line "$LAST_ALL_LOG" 1)" != ok ] || [ "$(log_line "$LAST_ALL_LOG" 2)" != "$BASE_NAME" ]; then
  WHY_FULL="last_all_log does not name the base full $BASE_NAME"
elif [ "${HOUR:-0}" = "${WANT_HOUR:-0}" ] && [ "$FULL_MADE_HOUR" != "$NOW_HOUR" ]; then
  WHY_FULL="it is the full backup hour ($FULL_HOUR)"
fi
if [ -n "$WHY_FULL" ]; then
  IS_FULL=1
  KIND=full
else
  KIND=incr
fi

STAMP=$(date +%Y%m%d_%H%M%S)
NAME="${NAME_PREFIX}_${KIND}_${STAMP}${SUFFIX}"
[ ! -e "$BACKUP_DIR/$NAME" ] || NAME="${NAME_PREFIX}_${KIND}_${STAMP}_$$${SUFFIX}"
if [ "$IS_FULL" = 1 ]; then
  echo "backup-physical: making a full backup $NAME ($WHY_FULL)"
else
  echo "backup-physical: making an incremental backup $NAME on $BASE_NAME"
fi

# ---------------------------------------------------------------------------
# Back up, pack, publish.

STEP="creating a work directory in $BACKUP_DIR"
WORK=$(mktemp -d "$BACKUP_DIR/.$NAME_PREFIX.work.XXXXXX")
rm -rf -- "$STATE_DIR/new"

if [ "$IS_FULL" = 1 ]; then
  run "mariadb-backup --backup (full)" "$MARIADB_BACKUP" "$@" --backup \
    "--target-dir=$WORK/backup" "--extra-lsndir=$STATE_DIR/new"
else
  run "mariadb-backup --backup (incremental on $BASE_NAME)" "$MARIADB_BACKUP" "$@" --backup \
    "--target-dir=$WORK/backup" "--extra-lsndir=$STATE_DIR/new" \
    "--incremental-basedir=$STATE_DIR/last"
fi
[ -f "$STATE_DIR/new/xtrabackup_checkpoints" ] || fail "mariadb-backup wrote no xtrabackup_checkpoints"

PARTIAL="$BACKUP_DIR/.$NAME.partial"
case "$COMPRESS" in
  gzip) run "packing $NAME (tar + gzip)" tar -czf "$PARTIAL" -C "$WORK/backup" . ;;
  zstd) run "packing $NAME (tar + zstd)" tar --use-compress-program=zstd -cf "$PARTIAL" -C "$WORK/backup" . ;;
  none) run "packing $NAME (tar)" tar -cf "$PARTIAL" -C "$WORK/backup" . ;;
esac
sync -- "$PARTIAL" 2>/dev/null || true
run "renaming $PARTIAL to $NAME" mv -f -- "$PARTIAL" "$BACKUP_DIR/$NAME"
PARTIAL=""

# The new backup becomes the base of the next incremental.
STEP="updating the chain state in $STATE_DIR"
rm -rf -- "$STATE_DIR/previous"
[ ! -d "$STATE_DIR/last" ] || mv -- "$STATE_DIR/last" "$STATE_DIR/previous"
mv -- "$STATE_DIR/new" "$STATE_DIR/last"
rm -rf -- "$STATE_DIR/previous"
if [ "$IS_FULL" = 1 ]; then
  printf '%s\n' "$NOW_HOUR" >"$STATE_DIR/full_hour.tmp" && mv -f -- "$STATE_DIR/full_hour.tmp" "$STATE_DIR/full_hour"
  printf '%s\n' "$NAME" >"$STATE_DIR/full_name.tmp" && mv -f -- "$STATE_DIR/full_name.tmp" "$STATE_DIR/full_name"
fi

STEP="writing back_log"
if [ "$IS_FULL" = 1 ]; then write_log "$LAST_ALL_LOG" ok "$NAME"; fi
write_log "$BACK_LOG" ok "$NAME"
REPORTED=1
echo "backup-physical: ok $NAME"

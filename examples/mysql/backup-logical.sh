#!/bin/sh
# MariaDB/MySQL logical backup: one consistent dump (mariadb-dump, or mysqldump,
# with --single-transaction --routines --events --triggers), gzip-compressed,
# into one file in BACKUP_DIR; reported to the UBackup agent through BACK_LOG
# (always a full backup, so the agent section has no last_all_log):
#   ok                       wrong
#   <file name>              <one-line reason>
#
# POSIX sh. Usage (agent config: script = sh /path/backup-logical.sh [DATABASE...]):
#   backup-logical.sh              dumps all databases (with the grant tables)
#   backup-logical.sh shop crm     dumps only these databases
#
# Environment (defaults in brackets):
#   BACKUP_DIR    where the dump files go [/data/backup/mysql-dump]
#   BACK_LOG      the agent's back_log [/var/log/ubackup/mysql-dump.log]
#   NAME_PREFIX   file names are <prefix>_<time>.sql.gz [mysql-dump]
#   GZIP_LEVEL    1 (fast) .. 9 (small) [6]
#   MARIADB_DEFAULTS_FILE        option file read first and only
#   MARIADB_DEFAULTS_EXTRA_FILE  option file read after the others, e.g. [client] user/password
#   MARIADB_HOST, MARIADB_PORT, MARIADB_SOCKET, MARIADB_USER  connection overrides
#   DUMP_PROGRAM  [mariadb-dump, else mysqldump]
#   TMPDIR        scratch space for small files [/tmp]
# Passwords: put them in an option file ([client] password=...) named by
# MARIADB_DEFAULTS_EXTRA_FILE, never on a command line.
# Non-transactional tables (MyISAM, Aria) are not consistent under
# --single-transaction unless nothing writes them during the dump.
set -eu

BACKUP_DIR=${BACKUP_DIR:-/data/backup/mysql-dump}
BACK_LOG=${BACK_LOG:-/var/log/ubackup/mysql-dump.log}
NAME_PREFIX=${NAME_PREFIX:-mysql-dump}
GZIP_LEVEL=${GZIP_LEVEL:-6}
MARIADB_DEFAULTS_FILE=${MARIADB_DEFAULTS_FILE:-}
MARIADB_DEFAULTS_EXTRA_FILE=${MARIADB_DEFAULTS_EXTRA_FILE:-}
MARIADB_HOST=${MARIADB_HOST:-}
MARIADB_PORT=${MARIADB_PORT:-}
MARIADB_SOCKET=${MARIADB_SOCKET:-}
MARIADB_USER=${MARIADB_USER:-}
DUMP_PROGRAM=${DUMP_PROGRAM:-}

# ---------------------------------------------------------------------------
# The back_log contract: every exit path writes BACK_LOG.

SCRIPT_NAME=backup-logical
# shellcheck source=../lib/back-log.sh
. "$(dirname -- "$0")/../lib/back-log.sh"

STEP="creating a scratch directory"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ubackup-mysqldump.XXXXXX")

# ---------------------------------------------------------------------------
# Settings

case "$NAME_PREFIX" in
  '' | -* | *[!A-Za-z0-9._-]*) fail "NAME_PREFIX may only have letters, digits, '.', '_' and '-', got \"$NAME_PREFIX\"" ;;
esac
case "$GZIP_LEVEL" in
  [1-9]) ;;
  *) fail "GZIP_LEVEL must be 1 to 9, got \"$GZIP_LEVEL\"" ;;
esac
if [ -z "$DUMP_PROGRAM" ]; then
  if command -v mariadb-dump >/dev/null 2>&1; then
    DUMP_PROGRAM=mariadb-dump
  elif command -v mysqldump >/dev/null 2>&1; then
    DUMP_PROGRAM=mysqldump
  else
    fail "neither mariadb-dump nor mysqldump is installed (Debian/Ubuntu: apt-get install mariadb-client)"
  fi
fi
for db in "$@"; do
  case "$db" in
    '' | -*) fail "bad database name \"$db\"" ;;
  esac
done

STEP="creating $BACKUP_DIR"
mkdir -p -- "$BACKUP_DIR"

STAMP=$(date +%Y%m%d_%H%M%S)
NAME="${NAME_PREFIX}_${STAMP}.sql.gz"
[ ! -e "$BACKUP_DIR/$NAME" ] || NAME="${NAME_PREFIX}_${STAMP}_$$.sql.gz"
PARTIAL="$BACKUP_DIR/.$NAME.partial"

# The dump's arguments, built in "$@" (no string is ever re-parsed): append the
# connection options and the dump options after the database names, then
# rotate the names to the end, so --defaults-file comes first as it must.
DATABASES=$#
[ -z "$MARIADB_DEFAULTS_FILE" ] || set -- "$@" "--defaults-file=$MARIADB_DEFAULTS_FILE"
[ -z "$MARIADB_DEFAULTS_EXTRA_FILE" ] || set -- "$@" "--defaults-extra-file=$MARIADB_DEFAULTS_EXTRA_FILE"
[ -z "$MARIADB_HOST" ] || set -- "$@" "--host=$MARIADB_HOST"
[ -z "$MARIADB_PORT" ] || set -- "$@" "--port=$MARIADB_PORT"
[ -z "$MARIADB_SOCKET" ] || set -- "$@" "--socket=$MARIADB_SOCKET"
[ -z "$MARIADB_USER" ] || set -- "$@" "--user=$MARIADB_USER"
set -- "$@" --single-transaction --quick --routines --events --triggers --hex-blob --comments
if [ "$DATABASES" -eq 0 ]; then
  set -- "$@" --all-databases --flush-privileges
else
  set -- "$@" --databases
fi
i=0
while [ "$i" -lt "$DATABASES" ]; do
  set -- "$@" "$1"
  shift
  i=$((i + 1))
done

# ---------------------------------------------------------------------------
# Dump | gzip into a temp name, check, rename.

STEP="$DUMP_PROGRAM | gzip into $PARTIAL"
echo "backup-logical: dumping to $NAME"
# POSIX sh has no pipefail: the dump's own exit status goes to a file.
{ "$DUMP_PROGRAM" "$@" 2>"$SCRATCH/stderr" || echo "$?" >"$SCRATCH/dump.rc"; } |
  gzip "-$GZIP_LEVEL" -c >"$PARTIAL"
if [ -s "$SCRATCH/dump.rc" ]; then
  tail -n 30 "$SCRATCH/stderr" >&2
  fail "$DUMP_PROGRAM failed (exit $(cat "$SCRATCH/dump.rc")): $(error_hint "$SCRATCH/stderr")"
fi
[ ! -s "$SCRATCH/stderr" ] || cat "$SCRATCH/stderr" >&2
STEP="checking $NAME"
# One read of the file checks the gzip stream and finds the last line: a
# complete dump ends with the dump program's "-- Dump completed" trailer.
{ gzip -dc "$PARTIAL" 2>"$SCRATCH/stderr" || echo "$?" >"$SCRATCH/gzip.rc"; } | tail -n 1 >"$SCRATCH/last-line"
[ ! -s "$SCRATCH/gzip.rc" ] || fail "$NAME is not a valid gzip file: $(error_hint "$SCRATCH/stderr")"
grep -q '^-- Dump completed' "$SCRATCH/last-line" || fail "the dump has no \"-- Dump completed\" trailer: it is incomplete"
sync -- "$PARTIAL" 2>/dev/null || true
STEP="renaming $PARTIAL to $NAME"
mv -f -- "$PARTIAL" "$BACKUP_DIR/$NAME" 2>"$SCRATCH/stderr"
PARTIAL=""

STEP="writing back_log"
write_log "$BACK_LOG" ok "$NAME"
REPORTED=1
echo "backup-logical: ok $NAME"

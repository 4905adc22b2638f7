#!/bin/sh
# PostgreSQL logical backup of one database with pg_dump in its custom format
# (compressed, restorable with pg_restore, table by table if need be), into one
# file in BACKUP_DIR; reported to the UBackup agent through BACK_LOG (always a
# full backup, so the agent section has no last_all_log):
#   ok                       wrong
#   <file name>              <one-line reason>
# Roles and tablespaces are cluster-wide and not in the dump: keep
# `pg_dumpall --globals-only` output too if you need them.
#
# POSIX sh. Usage (agent config: script = sh /path/backup-dump.sh DBNAME):
#   backup-dump.sh [DBNAME]       DBNAME defaults to PGDATABASE
#
# Environment (defaults in brackets):
#   BACKUP_DIR      where the backup files go [/data/backup/postgresql-dump]
#   BACK_LOG        the agent's back_log [/var/log/ubackup/postgresql-dump.log]
#   NAME_PREFIX     file names are <prefix>_<time>.dump [pg-dump]
#   PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSFILE, PGSSLMODE ...  libpq's own variables
#                   (a password belongs in ~/.pgpass or PGPASSFILE)
#   PG_DUMP         [pg_dump]
#   TMPDIR          scratch space for small files [/tmp]
set -eu

DBNAME=${1:-${PGDATABASE:-}}
BACKUP_DIR=${BACKUP_DIR:-/data/backup/postgresql-dump}
BACK_LOG=${BACK_LOG:-/var/log/ubackup/postgresql-dump.log}
NAME_PREFIX=${NAME_PREFIX:-pg-dump}
PG_DUMP=${PG_DUMP:-pg_dump}

# ---------------------------------------------------------------------------
# The back_log contract: every exit path writes BACK_LOG.

SCRIPT_NAME=backup-dump
# shellcheck source=../lib/back-log.sh
. "$(dirname -- "$0")/../lib/back-log.sh"

STEP="creating a scratch directory"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ubackup-pgdump.XXXXXX")

# ---------------------------------------------------------------------------
# Settings

case "$NAME_PREFIX" in
  '' | -* | *[!A-Za-z0-9._-]*) fail "NAME_PREFIX may only have letters, digits, '.', '_' and '-', got \"$NAME_PREFIX\"" ;;
esac
[ -n "$DBNAME" ] || fail "no database to dump: pass its name as the first argument or set PGDATABASE"
command -v "$PG_DUMP" >/dev/null 2>&1 || fail "$PG_DUMP is not installed (Debian/Ubuntu: apt-get install postgresql-client)"

STEP="creating $BACKUP_DIR"
mkdir -p -- "$BACKUP_DIR"
STAMP=$(date +%Y%m%d_%H%M%S)
NAME="${NAME_PREFIX}_${STAMP}.dump"
[ ! -e "$BACKUP_DIR/$NAME" ] || NAME="${NAME_PREFIX}_${STAMP}_$$.dump"
PARTIAL="$BACKUP_DIR/.$NAME.partial"

# ---------------------------------------------------------------------------
# Dump, publish.

echo "backup-dump: dumping $DBNAME to $NAME"
# -w: never prompt for a password (there is no terminal). --dbname= keeps a
# name that starts with "-" from being read as an option.
run "pg_dump of $DBNAME" "$PG_DUMP" -w -F custom -f "$PARTIAL" "--dbname=$DBNAME"
sync -- "$PARTIAL" 2>/dev/null || true
run "renaming $PARTIAL to $NAME" mv -f -- "$PARTIAL" "$BACKUP_DIR/$NAME"
PARTIAL=""

STEP="writing back_log"
write_log "$BACK_LOG" ok "$NAME"
REPORTED=1
echo "backup-dump: ok $NAME"

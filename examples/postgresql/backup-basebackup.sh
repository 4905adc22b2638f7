#!/bin/sh
# PostgreSQL physical backup of the whole cluster with pg_basebackup (tar
# format, gzip, with the WAL needed to make it consistent), packed into one
# .tar file in BACKUP_DIR; reported to the UBackup agent through BACK_LOG
# (always a full backup, so the agent section has no last_all_log):
#   ok                       wrong
#   <file name>              <one-line reason>
# The file holds base.tar.gz, pg_wal.tar.gz (WAL_METHOD=stream) and
# backup_manifest, as pg_basebackup -Ft -z writes them.
#
# POSIX sh. Agent config: script = sh /path/backup-basebackup.sh
# The user needs the REPLICATION attribute (or superuser) and a `replication`
# line in pg_hba.conf; the server needs a free wal sender (max_wal_senders).
#
# Environment (defaults in brackets):
#   BACKUP_DIR      where the backup files go [/data/backup/postgresql]
#   BACK_LOG        the agent's back_log [/var/log/ubackup/postgresql-base.log]
#   NAME_PREFIX     file names are <prefix>_<time>.tar [pg-base]
#   WAL_METHOD      stream | fetch [stream] (fetch needs wal_keep_size to cover the backup)
#   CHECKPOINT      fast | spread [fast]
#   PGHOST, PGPORT, PGUSER, PGPASSFILE, PGSSLMODE ...  libpq's own variables
#                   (a password belongs in ~/.pgpass or PGPASSFILE)
#   PG_BASEBACKUP   [pg_basebackup]
#   TMPDIR          scratch space for small files [/tmp]
set -eu

BACKUP_DIR=${BACKUP_DIR:-/data/backup/postgresql}
BACK_LOG=${BACK_LOG:-/var/log/ubackup/postgresql-base.log}
NAME_PREFIX=${NAME_PREFIX:-pg-base}
WAL_METHOD=${WAL_METHOD:-stream}
CHECKPOINT=${CHECKPOINT:-fast}
PG_BASEBACKUP=${PG_BASEBACKUP:-pg_basebackup}

# ---------------------------------------------------------------------------
# The back_log contract: every exit path writes BACK_LOG.

SCRIPT_NAME=backup-basebackup
# shellcheck source=../lib/back-log.sh
. "$(dirname -- "$0")/../lib/back-log.sh"

STEP="creating a scratch directory"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ubackup-pgbase.XXXXXX")

# ---------------------------------------------------------------------------
# Settings

case "$NAME_PREFIX" in
  '' | -* | *[!A-Za-z0-9._-]*) fail "NAME_PREFIX may only have letters, digits, '.', '_' and '-', got \"$NAME_PREFIX\"" ;;
esac
case "$WAL_METHOD" in
  stream | fetch) ;;
  *) fail "WAL_METHOD must be stream or fetch, got \"$WAL_METHOD\"" ;;
esac
case "$CHECKPOINT" in
  fast | spread) ;;
  *) fail "CHECKPOINT must be fast or spread, got \"$CHECKPOINT\"" ;;
esac
command -v "$PG_BASEBACKUP" >/dev/null 2>&1 ||
  fail "$PG_BASEBACKUP is not installed (Debian/Ubuntu: apt-get install postgresql-client)"

STEP="creating $BACKUP_DIR"
mkdir -p -- "$BACKUP_DIR"
STAMP=$(date +%Y%m%d_%H%M%S)
NAME="${NAME_PREFIX}_${STAMP}.tar"
[ ! -e "$BACKUP_DIR/$NAME" ] || NAME="${NAME_PREFIX}_${STAMP}_$$.tar"
PARTIAL="$BACKUP_DIR/.$NAME.partial"

# ---------------------------------------------------------------------------
# Back up, pack, publish.

STEP="creating a work directory in $BACKUP_DIR"
WORK=$(mktemp -d "$BACKUP_DIR/.work.XXXXXX")
echo "backup-basebackup: backing up to $NAME"
# -w: never prompt for a password (there is no terminal); -D must not exist yet.
run "pg_basebackup" "$PG_BASEBACKUP" -w -D "$WORK/base" -F tar -z -X "$WAL_METHOD" \
  -c "$CHECKPOINT" -l "ubackup $NAME"
[ -f "$WORK/base/base.tar.gz" ] || fail "pg_basebackup wrote no base.tar.gz"
run "packing $NAME" tar -cf "$PARTIAL" -C "$WORK/base" .
sync -- "$PARTIAL" 2>/dev/null || true
run "renaming $PARTIAL to $NAME" mv -f -- "$PARTIAL" "$BACKUP_DIR/$NAME"
PARTIAL=""

STEP="writing back_log"
write_log "$BACK_LOG" ok "$NAME"
REPORTED=1
echo "backup-basebackup: ok $NAME"

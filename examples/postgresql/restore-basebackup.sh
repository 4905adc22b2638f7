#!/bin/sh
# Restores a PostgreSQL base backup made by backup-basebackup.sh into an empty
# data directory, ready for a server of the same major version to start on it
# (it replays the WAL included in the backup and comes up consistent).
#
# POSIX sh. Usage:
#   RESTORE_PGDATA=/var/lib/postgresql/15/restored restore-basebackup.sh FILE.tar
# Without an argument the file named in UBACKUP_FILES is used (what
# `ubackup restore --exec` passes). A base backup is a whole backup: exactly
# one file.
#
# Then start it as the postgres user, e.g.
#   runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$RESTORE_PGDATA" -o "-p 5433" start
# The restored directory carries the source's postgresql.auto.conf but not its
# postgresql.conf / pg_hba.conf when those live outside the data directory
# (Debian keeps them in /etc/postgresql): copy them in or pass -c options.
#
# Environment (defaults in brackets):
#   RESTORE_PGDATA    the new data directory; must be missing or empty (required)
#   RESTORE_WORK_DIR  where the file is unpacked [the parent of RESTORE_PGDATA]
#   RESTORE_OWNER     user:group that gets the data directory when run as root
#                     [postgres:postgres if that user exists; empty = leave as is]
#   RESTORE_VERIFY    1 = check the files against backup_manifest with pg_verifybackup
#                     when it is installed [1]
#   PG_BINDIR         where pg_verifybackup and pg_waldump are [searched in PATH, then
#                     the newest /usr/lib/postgresql/*/bin]
set -eu

RESTORE_PGDATA=${RESTORE_PGDATA:-}
RESTORE_WORK_DIR=${RESTORE_WORK_DIR:-}
RESTORE_VERIFY=${RESTORE_VERIFY:-1}
PG_BINDIR=${PG_BINDIR:-}
if [ -z "${RESTORE_OWNER+set}" ]; then
  RESTORE_OWNER=""
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then RESTORE_OWNER=postgres:postgres; fi
fi

WORK=""
cleanup() { [ -z "$WORK" ] || rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

die() {
  printf 'restore-basebackup: %s\n' "$1" >&2
  exit 1
}

run() {
  _what=$1
  shift
  "$@" >"$WORK/step.log" 2>&1 || {
    _rc=$?
    tail -n 30 "$WORK/step.log" >&2
    die "$_what failed (exit $_rc)"
  }
}

if [ "$#" -eq 0 ] && [ -n "${UBACKUP_FILES:-}" ]; then
  _ifs=$IFS
  IFS='
'
  set -f
  # shellcheck disable=SC2086 # split on newlines only, globbing off
  set -- $UBACKUP_FILES
  set +f
  IFS=$_ifs
fi
[ "$#" -eq 1 ] || die "expected exactly one base backup file, got $#"
FILE=$1
[ -f "$FILE" ] || die "no such backup file: $FILE"
case "$FILE" in -*) FILE="./$FILE" ;; esac
[ -n "$RESTORE_PGDATA" ] || die "set RESTORE_PGDATA to the (empty) data directory to restore into"
if [ -e "$RESTORE_PGDATA" ]; then
  [ -d "$RESTORE_PGDATA" ] || die "RESTORE_PGDATA $RESTORE_PGDATA is not a directory"
  [ -z "$(ls -A -- "$RESTORE_PGDATA")" ] || die "RESTORE_PGDATA $RESTORE_PGDATA is not empty"
fi
mkdir -p -- "$RESTORE_PGDATA"
chmod 0700 -- "$RESTORE_PGDATA"
RESTORE_PGDATA=$(cd -- "$RESTORE_PGDATA" && pwd -P)
[ -n "$RESTORE_WORK_DIR" ] || RESTORE_WORK_DIR=$(dirname -- "$RESTORE_PGDATA")
WORK=$(mktemp -d "$RESTORE_WORK_DIR/.ubackup-restore.XXXXXX")

echo "restore-basebackup: unpacking $FILE"
mkdir -- "$WORK/backup"
run "unpacking $FILE" tar -xf "$FILE" -C "$WORK/backup"
[ -f "$WORK/backup/base.tar.gz" ] || [ -f "$WORK/backup/base.tar" ] ||
  die "$FILE is not a pg_basebackup tar backup (no base.tar.gz inside)"
for part in "$WORK/backup"/*; do
  case "${part##*/}" in
    base.tar.gz | base.tar | pg_wal.tar.gz | pg_wal.tar | backup_manifest) ;;
    *.tar | *.tar.gz)
      die "$FILE holds a tablespace archive (${part##*/}): restore tablespaces by hand, see the pg_basebackup documentation"
      ;;
    *) die "$FILE holds an unexpected file ${part##*/}" ;;
  esac
done

echo "restore-basebackup: extracting into $RESTORE_PGDATA"
for base in base.tar.gz base.tar; do
  [ ! -f "$WORK/backup/$base" ] || run "extracting $base" tar -xf "$WORK/backup/$base" -C "$RESTORE_PGDATA"
done
for wal in pg_wal.tar.gz pg_wal.tar; do
  [ ! -f "$WORK/backup/$wal" ] || run "extracting $wal" tar -xf "$WORK/backup/$wal" -C "$RESTORE_PGDATA/pg_wal"
done
[ -f "$RESTORE_PGDATA/PG_VERSION" ] || die "the backup has no PG_VERSION: it is not a PostgreSQL data directory"

if [ "$RESTORE_VERIFY" = 1 ] && [ -f "$WORK/backup/backup_manifest" ]; then
  verify=""
  if [ -n "$PG_BINDIR" ] && [ -x "$PG_BINDIR/pg_verifybackup" ]; then
    verify="$PG_BINDIR/pg_verifybackup"
  elif command -v pg_verifybackup >/dev/null 2>&1; then
    verify=$(command -v pg_verifybackup)
  else
    version=$(sed -n 1p "$RESTORE_PGDATA/PG_VERSION")
    [ ! -x "/usr/lib/postgresql/$version/bin/pg_verifybackup" ] ||
      verify="/usr/lib/postgresql/$version/bin/pg_verifybackup"
  fi
  if [ -n "$verify" ]; then
    echo "restore-basebackup: checking the files against backup_manifest"
    # pg_verifybackup finds pg_waldump next to itself to check the WAL.
    run "pg_verifybackup" "$verify" -m "$WORK/backup/backup_manifest" "$RESTORE_PGDATA"
  else
    echo "restore-basebackup: pg_verifybackup not found; the files were not checked against backup_manifest"
  fi
fi

if [ -n "$RESTORE_OWNER" ]; then
  run "chown $RESTORE_OWNER $RESTORE_PGDATA" chown -R -- "$RESTORE_OWNER" "$RESTORE_PGDATA"
fi
echo "restore-basebackup: restored $FILE into $RESTORE_PGDATA"

#!/bin/sh
# Restores a pg_dump custom-format file made by backup-dump.sh into a new
# database on a running PostgreSQL server, in one transaction (all or nothing).
#
# POSIX sh. Usage:
#   PGHOST=/var/run/postgresql RESTORE_DBNAME=shop_restored restore-dump.sh FILE.dump
# Without an argument the file named in UBACKUP_FILES is used (what
# `ubackup restore --exec` passes). A dump is a whole backup: exactly one file.
#
# The dump's objects keep their owners and grants, so the roles must exist on
# the target server (pg_dumpall --globals-only from the source makes them), or
# set RESTORE_NO_OWNER=1.
#
# Environment (defaults in brackets):
#   RESTORE_DBNAME    the database to restore into (required)
#   RESTORE_CREATE    1 = create RESTORE_DBNAME (from template0), refusing one that
#                     exists; 0 = restore into an existing, empty database [1]
#   RESTORE_NO_OWNER  1 = skip owners and grants (objects belong to the restoring user) [0]
#   PGHOST, PGPORT, PGUSER, PGPASSFILE, PGSSLMODE ...  libpq's own variables
#   PG_RESTORE, CREATEDB  [pg_restore, createdb]
set -eu

RESTORE_DBNAME=${RESTORE_DBNAME:-}
RESTORE_CREATE=${RESTORE_CREATE:-1}
RESTORE_NO_OWNER=${RESTORE_NO_OWNER:-0}
PG_RESTORE=${PG_RESTORE:-pg_restore}
CREATEDB=${CREATEDB:-createdb}

trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

die() {
  printf 'restore-dump: %s\n' "$1" >&2
  exit 1
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
[ "$#" -eq 1 ] || die "expected exactly one dump file, got $#"
FILE=$1
[ -f "$FILE" ] || die "no such dump file: $FILE"
case "$FILE" in -*) FILE="./$FILE" ;; esac
[ -n "$RESTORE_DBNAME" ] || die "set RESTORE_DBNAME to the database to restore into"
case "$RESTORE_DBNAME" in
  -* | *=*) die "RESTORE_DBNAME must be a plain database name, got \"$RESTORE_DBNAME\"" ;;
esac
command -v "$PG_RESTORE" >/dev/null 2>&1 || die "$PG_RESTORE is not installed (Debian/Ubuntu: apt-get install postgresql-client)"

echo "restore-dump: checking $FILE"
"$PG_RESTORE" --list -- "$FILE" >/dev/null || die "$FILE is not a pg_dump custom-format archive"

if [ "$RESTORE_CREATE" = 1 ]; then
  echo "restore-dump: creating database $RESTORE_DBNAME"
  "$CREATEDB" -w --template=template0 -- "$RESTORE_DBNAME" ||
    die "could not create database $RESTORE_DBNAME (to restore into an existing empty database, set RESTORE_CREATE=0)"
fi

set -- -w --exit-on-error --single-transaction "--dbname=$RESTORE_DBNAME"
[ "$RESTORE_NO_OWNER" != 1 ] || set -- "$@" --no-owner --no-privileges
echo "restore-dump: restoring $FILE into $RESTORE_DBNAME"
"$PG_RESTORE" "$@" -- "$FILE" || die "pg_restore failed (exit $?); nothing was restored (single transaction)"
echo "restore-dump: restored $FILE into $RESTORE_DBNAME"

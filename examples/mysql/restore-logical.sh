#!/bin/sh
# Loads a dump made by backup-logical.sh into a running MariaDB/MySQL server.
#
# POSIX sh. Usage:
#   MARIADB_SOCKET=/run/mysqld/mysqld.sock restore-logical.sh FILE.sql.gz
# Without an argument the file named in UBACKUP_FILES is used (what
# `ubackup restore --exec` passes). A logical dump is a whole backup: exactly
# one file.
#
# The dump re-creates each database it holds (DROP/CREATE of every table); a
# dump of all databases also replaces the grant tables (users and passwords)
# and flushes privileges. Restore into a new server, or one whose data may be
# overwritten.
#
# Environment (defaults in brackets):
#   MARIADB_DEFAULTS_FILE        option file read first and only
#   MARIADB_DEFAULTS_EXTRA_FILE  option file read after the others, e.g. [client] user/password
#   MARIADB_HOST, MARIADB_PORT, MARIADB_SOCKET, MARIADB_USER  connection overrides
#   CLIENT_PROGRAM  [mariadb, else mysql]
set -eu

MARIADB_DEFAULTS_FILE=${MARIADB_DEFAULTS_FILE:-}
MARIADB_DEFAULTS_EXTRA_FILE=${MARIADB_DEFAULTS_EXTRA_FILE:-}
MARIADB_HOST=${MARIADB_HOST:-}
MARIADB_PORT=${MARIADB_PORT:-}
MARIADB_SOCKET=${MARIADB_SOCKET:-}
MARIADB_USER=${MARIADB_USER:-}
CLIENT_PROGRAM=${CLIENT_PROGRAM:-}

SCRATCH=""
cleanup() { [ -z "$SCRATCH" ] || rm -rf -- "$SCRATCH"; }
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

die() {
  printf 'restore-logical: %s\n' "$1" >&2
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
[ "$#" -eq 1 ] || die "expected exactly one dump file (a logical dump has no incrementals), got $#"
FILE=$1
[ -f "$FILE" ] || die "no such dump file: $FILE"
case "$FILE" in -*) FILE="./$FILE" ;; esac
if [ -z "$CLIENT_PROGRAM" ]; then
  if command -v mariadb >/dev/null 2>&1; then
    CLIENT_PROGRAM=mariadb
  elif command -v mysql >/dev/null 2>&1; then
    CLIENT_PROGRAM=mysql
  else
    die "neither mariadb nor mysql is installed (Debian/Ubuntu: apt-get install mariadb-client)"
  fi
fi
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/ubackup-restore.XXXXXX")

# Check the whole file before anything reaches the server.
echo "restore-logical: checking $FILE"
gzip -t "$FILE" || die "$FILE is not a valid gzip file"

set --
[ -z "$MARIADB_DEFAULTS_FILE" ] || set -- "$@" "--defaults-file=$MARIADB_DEFAULTS_FILE"
[ -z "$MARIADB_DEFAULTS_EXTRA_FILE" ] || set -- "$@" "--defaults-extra-file=$MARIADB_DEFAULTS_EXTRA_FILE"
[ -z "$MARIADB_HOST" ] || set -- "$@" "--host=$MARIADB_HOST"
[ -z "$MARIADB_PORT" ] || set -- "$@" "--port=$MARIADB_PORT"
[ -z "$MARIADB_SOCKET" ] || set -- "$@" "--socket=$MARIADB_SOCKET"
[ -z "$MARIADB_USER" ] || set -- "$@" "--user=$MARIADB_USER"
set -- "$@" --batch --binary-mode

echo "restore-logical: loading $FILE"
# POSIX sh has no pipefail: gzip's exit status goes to a file.
{ gzip -dc -- "$FILE" || echo "$?" >"$SCRATCH/gzip.rc"; } | "$CLIENT_PROGRAM" "$@" ||
  die "$CLIENT_PROGRAM failed (exit $?) while loading $FILE"
[ ! -s "$SCRATCH/gzip.rc" ] || die "gzip failed (exit $(cat "$SCRATCH/gzip.rc")) while reading $FILE"
echo "restore-logical: loaded $FILE"

#!/bin/sh
# Restores a MariaDB physical backup chain made by backup-physical.sh into an
# empty data directory: unpacks each file, prepares the full, applies each
# incremental in order (mariadb-backup --prepare --incremental-dir), then
# copies the result into RESTORE_DATADIR and gives it to the mysql user.
#
# POSIX sh. Usage:
#   RESTORE_DATADIR=/var/lib/mysql-restored restore-physical.sh FULL [INCR...]
# The files come in chain order, the full first (what `ubackup restore --exec`
# passes). Without arguments the newline-separated list in UBACKUP_FILES is used.
#
# Environment (defaults in brackets):
#   RESTORE_DATADIR        the new data directory; must be missing or empty (required)
#   RESTORE_WORK_DIR       where the files are unpacked and prepared [the parent of RESTORE_DATADIR]
#   RESTORE_METHOD         copy-back | move-back [copy-back]
#   RESTORE_OWNER          user:group that gets the data directory when run as root
#                          [mysql:mysql if that user exists; empty = leave as is]
#   RESTORE_USE_MEMORY     --use-memory for --prepare, e.g. 1G [mariadb-backup's default]
#   MARIADB_DEFAULTS_FILE  option file for --copy-back (innodb_data_home_dir etc.) [none: --no-defaults]
#   MARIADB_BACKUP         the mariadb-backup program [mariadb-backup, else mariabackup]
#
# Then start the server on it, e.g.: mariadbd --datadir="$RESTORE_DATADIR" ...
# (the restored server has the users and passwords of the source).
set -eu

RESTORE_DATADIR=${RESTORE_DATADIR:-}
RESTORE_WORK_DIR=${RESTORE_WORK_DIR:-}
RESTORE_METHOD=${RESTORE_METHOD:-copy-back}
RESTORE_USE_MEMORY=${RESTORE_USE_MEMORY:-}
MARIADB_DEFAULTS_FILE=${MARIADB_DEFAULTS_FILE:-}
MARIADB_BACKUP=${MARIADB_BACKUP:-}
if [ -z "${RESTORE_OWNER+set}" ]; then
  RESTORE_OWNER=""
  if [ "$(id -u)" = 0 ] && id mysql >/dev/null 2>&1; then RESTORE_OWNER=mysql:mysql; fi
fi

WORK=""
cleanup() { [ -z "$WORK" ] || rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

die() {
  printf 'restore-physical: %s\n' "$1" >&2
  exit 1
}

# run DESCRIPTION COMMAND [ARG...]: the command's output goes to a log; on failure its tail is shown.
run() {
  _what=$1
  shift
  "$@" >"$WORK/step.log" 2>&1 || {
    _rc=$?
    tail -n 30 "$WORK/step.log" >&2
    die "$_what failed (exit $_rc)"
  }
}

checkpoint() { sed -n "s/^$2 = //p" -- "$1/xtrabackup_checkpoints" | tr -d '\r'; }

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
[ "$#" -gt 0 ] || die "no backup files: pass them as arguments in chain order (full first) or in UBACKUP_FILES"
[ -n "$RESTORE_DATADIR" ] || die "set RESTORE_DATADIR to the (empty) data directory to restore into"
case "$RESTORE_METHOD" in
  copy-back | move-back) ;;
  *) die "RESTORE_METHOD must be copy-back or move-back, got \"$RESTORE_METHOD\"" ;;
esac
if [ -z "$MARIADB_BACKUP" ]; then
  if command -v mariadb-backup >/dev/null 2>&1; then
    MARIADB_BACKUP=mariadb-backup
  elif command -v mariabackup >/dev/null 2>&1; then
    MARIADB_BACKUP=mariabackup
  else
    die "mariadb-backup is not installed (Debian/Ubuntu: apt-get install mariadb-backup)"
  fi
fi
for f in "$@"; do
  [ -f "$f" ] || die "no such backup file: $f"
done
if [ -e "$RESTORE_DATADIR" ]; then
  [ -d "$RESTORE_DATADIR" ] || die "RESTORE_DATADIR $RESTORE_DATADIR is not a directory"
  [ -z "$(ls -A -- "$RESTORE_DATADIR")" ] || die "RESTORE_DATADIR $RESTORE_DATADIR is not empty"
fi
mkdir -p -- "$RESTORE_DATADIR"
RESTORE_DATADIR=$(cd -- "$RESTORE_DATADIR" && pwd -P)
[ -n "$RESTORE_WORK_DIR" ] || RESTORE_WORK_DIR=$(dirname -- "$RESTORE_DATADIR")
WORK=$(mktemp -d "$RESTORE_WORK_DIR/.ubackup-restore.XXXXXX")

# Unpack each file and check that the chain is whole: a full first, then
# incrementals that each start where the previous backup ended.
i=0
prev_to=""
prev_last=0
for f in "$@"; do
  i=$((i + 1))
  dir="$WORK/$i"
  mkdir -- "$dir"
  case "$f" in -*) f="./$f" ;; esac
  echo "restore-physical: unpacking $f"
  run "unpacking $f" tar -xf "$f" -C "$dir"
  [ -f "$dir/xtrabackup_checkpoints" ] || die "$f is not a mariadb-backup archive (no xtrabackup_checkpoints)"
  type=$(checkpoint "$dir" backup_type)
  from=$(checkpoint "$dir" from_lsn)
  to=$(checkpoint "$dir" to_lsn)
  case "$from$to$(checkpoint "$dir" last_lsn)" in
    '' | *[!0-9]*) die "$f has an unreadable xtrabackup_checkpoints" ;;
  esac
  if [ "$i" -eq 1 ]; then
    [ "$type" = full-backuped ] || die "$f is not a full backup (backup_type = $type): pass the base full first"
  else
    [ "$type" = incremental ] || die "$f is not an incremental backup (backup_type = $type)"
    [ "$from" = "$prev_to" ] ||
      die "$f does not follow the previous file: it starts at LSN $from, the chain so far ends at $prev_to (wrong order or a missing incremental)"
  fi
  last=$(checkpoint "$dir" last_lsn)
  if [ "$i" -gt 1 ] && [ "$last" -lt "$prev_last" ]; then
    die "$f is older than the file before it (its redo log ends at LSN $last, the previous one at $prev_last): pass the files in chain order"
  fi
  prev_to=$to
  prev_last=$last
done

set --
[ -z "$RESTORE_USE_MEMORY" ] || set -- "--use-memory=$RESTORE_USE_MEMORY"
echo "restore-physical: preparing the full backup"
run "mariadb-backup --prepare of the full backup" "$MARIADB_BACKUP" --no-defaults --prepare "$@" "--target-dir=$WORK/1"
n=2
while [ "$n" -le "$i" ]; do
  echo "restore-physical: applying incremental $((n - 1)) of $((i - 1))"
  run "mariadb-backup --prepare --incremental-dir of incremental $((n - 1))" \
    "$MARIADB_BACKUP" --no-defaults --prepare "$@" "--target-dir=$WORK/1" "--incremental-dir=$WORK/$n"
  rm -rf -- "${WORK:?}/$n"
  n=$((n + 1))
done

if [ -n "$MARIADB_DEFAULTS_FILE" ]; then
  set -- "--defaults-file=$MARIADB_DEFAULTS_FILE"
else
  set -- --no-defaults
fi
echo "restore-physical: $RESTORE_METHOD into $RESTORE_DATADIR"
run "mariadb-backup --$RESTORE_METHOD" "$MARIADB_BACKUP" "$@" "--$RESTORE_METHOD" \
  "--target-dir=$WORK/1" "--datadir=$RESTORE_DATADIR"
if [ -n "$RESTORE_OWNER" ]; then
  run "chown $RESTORE_OWNER $RESTORE_DATADIR" chown -R -- "$RESTORE_OWNER" "$RESTORE_DATADIR"
fi
echo "restore-physical: restored $i file(s) into $RESTORE_DATADIR"

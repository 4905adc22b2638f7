#!/bin/sh
# Restores a Redis backup made by backup-rdb.sh: decompresses it into
# RESTORE_DIR as the RDB file a redis-server loads when it starts.
#
# POSIX sh. Usage:
#   RESTORE_DIR=/var/lib/redis-restored restore-rdb.sh FILE.rdb.gz
# Without an argument the file named in UBACKUP_FILES is used (what
# `ubackup restore --exec` passes). An RDB backup is a whole backup: exactly
# one file.
#
# Then start a server on it (nothing else may be using that directory):
#   redis-server --dir "$RESTORE_DIR" --dbfilename dump.rdb --appendonly no
# With `appendonly yes` Redis loads its AOF instead of the RDB file: start it
# once with `--appendonly no`, then turn AOF on at run time with
# `CONFIG SET appendonly yes` (it writes a new AOF from the loaded data).
# Never put the file under a running server: it would overwrite it on its
# next save or shutdown.
#
# Environment (defaults in brackets):
#   RESTORE_DIR         the directory the server will use as `dir` (required; created if missing)
#   RESTORE_DBFILENAME  the server's `dbfilename` [dump.rdb]
#   RESTORE_FORCE       1 = replace an existing RDB file in RESTORE_DIR [0: refuse]
#   RESTORE_OWNER       user:group that gets the file, e.g. redis:redis [leave as is]
set -eu

RESTORE_DIR=${RESTORE_DIR:-}
RESTORE_DBFILENAME=${RESTORE_DBFILENAME:-dump.rdb}
RESTORE_FORCE=${RESTORE_FORCE:-0}
RESTORE_OWNER=${RESTORE_OWNER:-}

PARTIAL=""
cleanup() { [ -z "$PARTIAL" ] || rm -f -- "$PARTIAL"; }
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

die() {
  printf 'restore-rdb: %s\n' "$1" >&2
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
[ "$#" -eq 1 ] || die "expected exactly one RDB backup file (an RDB backup has no incrementals), got $#"
FILE=$1
[ -f "$FILE" ] || die "no such backup file: $FILE"
case "$FILE" in -*) FILE="./$FILE" ;; esac
[ -n "$RESTORE_DIR" ] || die "set RESTORE_DIR to the directory the restored redis-server will use"
case "$RESTORE_DBFILENAME" in
  '' | */* | . | ..) die "RESTORE_DBFILENAME must be a file name, got \"$RESTORE_DBFILENAME\"" ;;
esac

TARGET="$RESTORE_DIR/$RESTORE_DBFILENAME"
mkdir -p -- "$RESTORE_DIR"
if [ -e "$TARGET" ] && [ "$RESTORE_FORCE" != 1 ]; then
  die "$TARGET already exists: stop the server that uses it and set RESTORE_FORCE=1 to replace it, or choose another RESTORE_DIR"
fi

PARTIAL="$RESTORE_DIR/.$RESTORE_DBFILENAME.restore.$$"
echo "restore-rdb: decompressing $FILE"
gzip -dc -- "$FILE" >"$PARTIAL" || die "could not decompress $FILE (is it a .rdb.gz from backup-rdb.sh?)"
MAGIC=$(dd if="$PARTIAL" bs=5 count=1 2>/dev/null)
[ "$MAGIC" = REDIS ] || die "$FILE does not hold an RDB file (it does not start with REDIS)"
if command -v redis-check-rdb >/dev/null 2>&1; then
  redis-check-rdb "$PARTIAL" >"$PARTIAL.check" 2>&1 || {
    tail -n 20 "$PARTIAL.check" >&2
    rm -f -- "$PARTIAL.check"
    die "redis-check-rdb found the RDB file damaged"
  }
  rm -f -- "$PARTIAL.check"
fi
chmod 0640 -- "$PARTIAL"
[ -z "$RESTORE_OWNER" ] || chown -- "$RESTORE_OWNER" "$PARTIAL" || die "chown $RESTORE_OWNER failed"
mv -f -- "$PARTIAL" "$TARGET"
PARTIAL=""
echo "restore-rdb: restored $TARGET; start the server with: redis-server --dir $RESTORE_DIR --dbfilename $RESTORE_DBFILENAME --appendonly no"

# The back_log contract shared by the example backup scripts (sourced, not run):
# every exit path writes BACK_LOG, `ok` only where the script says so.
# The sourcing script sets SCRIPT_NAME and BACK_LOG first.

umask 077
STEP="starting"
REPORTED=0
SIGNAL=""
SCRATCH=""
PARTIAL=""
WORK=""

one_line() {
  tr '\r\n\t' '   ' | sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//' | cut -c1-400
}

error_hint() {
  [ -s "$1" ] || { printf 'no error output'; return 0; }
  _hint=$(grep -i -E 'error|fatal|fail|denied|refused|cannot|can.t|could not|unable|no such|not found|invalid|unknown|noauth|wrongpass' "$1" | tail -n 1 || true)
  [ -n "$_hint" ] || _hint=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true)
  printf '%s' "$_hint" | one_line
}

write_log() {
  mkdir -p -- "$(dirname -- "$1")" 2>/dev/null || true
  printf '%s\n%s\n' "$2" "$3" >"$1.tmp.$$" && mv -f -- "$1.tmp.$$" "$1"
}

fail() {
  _reason=$(printf '%s' "$1" | one_line)
  printf '%s: %s\n' "$SCRIPT_NAME" "$_reason" >&2
  REPORTED=1
  write_log "$BACK_LOG" wrong "$_reason" || true
  exit 1
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
    printf '%s: %s\n' "$SCRIPT_NAME" "$_reason" >&2
    write_log "$BACK_LOG" wrong "$_reason" || true
  fi
  [ -z "$PARTIAL" ] || rm -f -- "$PARTIAL"
  [ -z "$SCRATCH" ] || rm -rf -- "$SCRATCH"
  [ -z "$WORK" ] || rm -rf -- "$WORK"
  exit "$_rc"
}
run() {
  STEP=$1
  shift
  "$@" 2>"$SCRATCH/stderr" || {
    _rc=$?
    tail -n 30 "$SCRATCH/stderr" >&2
    fail "$STEP failed (exit $_rc): $(error_hint "$SCRATCH/stderr")"
  }
}

trap on_exit EXIT
trap 'SIGNAL=SIGTERM; exit 143' TERM
trap 'SIGNAL=SIGINT; exit 130' INT
trap 'SIGNAL=SIGHUP; exit 129' HUP

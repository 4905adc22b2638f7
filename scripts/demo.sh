#!/usr/bin/env bash
# One command for the demo on a fresh clone: installs, builds and starts `ubackup demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
UBACKUP_APT_PACKAGES="${UBACKUP_APT_PACKAGES:-ca-certificates python3 make g++}" scripts/install-deps.sh
exec node dist/src/cli.js demo "$@"

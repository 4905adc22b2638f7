#!/usr/bin/env bash
# One command for the whole test suite on a fresh clone: installs, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
npm run -s lint
npx vitest run "$@"

#!/usr/bin/env bash
# Installs what UBackup's build and tests need on a fresh Debian machine:
# system packages (only those missing), then the npm dependencies from the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# python3, make and g++ build better-sqlite3 from source when no prebuilt binary can be fetched;
# openssl makes the TLS test certificate, mount the tmpfs of the reserve test.
# mariadb-server, mariadb-backup and redis-server run the examples/ backup scripts in their e2e test.
# chromium runs the dashboard's and the extension's browser tests; fonts-wqy-microhei renders Chinese.
for pkg in ${UBACKUP_APT_PACKAGES:-postgresql rsync b3sum ca-certificates python3 make g++ openssl mount mariadb-server mariadb-backup redis-server chromium fonts-wqy-microhei}; do
  have_pkg "$pkg" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run -s build

#!/usr/bin/env bash
# Installs the real services the test suite drives: SLURM (slurm-wlm + munge), PostgreSQL and
# Chromium, from Debian packages. Needs root; skips what is already present. Outside CI and
# without root it only reports, and the tests that need a missing part skip with a reason.
set -euo pipefail
need=()
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm munge)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  echo "system deps: all present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "system deps: missing ${need[*]} and not root; the tests that need them will skip" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
echo "system deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

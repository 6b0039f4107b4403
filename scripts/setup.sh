#!/usr/bin/env bash
# What the tests need beyond the Rust toolchain, installed from Debian's packages: a headless
# Chromium (the dashboard test) and Prometheus (the scrape test). Idempotent; run as root.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

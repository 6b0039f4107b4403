#!/usr/bin/env bash
# What the tests need beyond the Rust toolchain, installed from Debian's packages: a headless
# Chromium (the dashboard test) and Prometheus (the scrape test); and Vyper from PyPI. Idempotent; run as root.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Vyper, from PyPI: the hBTC test recompiles hvm/contracts/hbtc.vy and compares it with the
# committed bytecode.
if ! vyper --version 2>/dev/null | grep -q '^0\.4\.3'; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore vyper==0.4.3
fi

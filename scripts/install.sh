#!/usr/bin/env bash
# Installs everything CultureLab and its tests need into the current Python (idempotent: a second run
# installs nothing). Used by `make demo`, `make test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# PyTorch first and pinned: an unpinned `torch` would pull a multi-GB CUDA build from PyPI, while these
# releases are the ones this machine kind serves from its own disk (see README, "Installing").
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
  case "$(uname -m)" in
    aarch64) "$PY" -m pip install --quiet torch==2.9.1 torchvision==0.24.1 ;;
    *)       "$PY" -m pip install --quiet torch==2.14.1 torchvision==0.29.1 ;;
  esac
fi

stamp=.stamp-install
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! "$PY" -c 'import culturelab.platform.cli' 2>/dev/null; then
  "$PY" -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi

# Headless Chromium for the browser tests (Debian packages); skipped where apt is not available.
if [ "${CULTURELAB_SKIP_BROWSER:-0}" != 1 ] && ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "install.sh: could not install chromium; browser tests will be skipped" >&2
fi

#!/usr/bin/env bash
# Installs CultureLab into the current Python (idempotent: a second run installs nothing), showing pip's
# progress, since the first run takes minutes. Used by `make demo`, `make test` and .ci/run; with
# CULTURELAB_BROWSER_TESTS=1 (`make test`) it adds the test tools and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# PyTorch first and pinned: an unpinned `torch` would pull a multi-GB CUDA build from PyPI, while these
# releases are the ones this machine kind serves from its own disk (see README, "Installing").
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
  case "$(uname -m)" in
    aarch64) "$PY" -m pip install --progress-bar on torch==2.9.1 torchvision==0.24.1 ;;
    *)       "$PY" -m pip install --progress-bar on torch==2.14.1 torchvision==0.29.1 ;;
  esac
fi

tests=${CULTURELAB_BROWSER_TESTS:-0}
if [ "$tests" = 1 ]; then target='.[dev]' stamp=.stamp-install-dev; else target='.' stamp=.stamp-install; fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! "$PY" -c 'import culturelab.platform.cli' 2>/dev/null; then
  echo "install.sh: installing CultureLab ($target) and its dependencies (a few minutes the first time)" >&2
  "$PY" -m pip install --progress-bar on -e "$target"
  touch "$stamp"
fi

# Headless Chromium for the browser tests (Debian packages), for `make test` only; skipped where apt is not
# available.
if [ "$tests" = 1 ] && ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "install.sh: installing Debian's chromium and chromium-driver for the browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "install.sh: could not install chromium; browser tests will be skipped" >&2
fi

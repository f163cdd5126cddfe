#!/usr/bin/env bash
# Starts the local PostgreSQL server when it is installed but not running, and prints the URL the test
# suite should use (empty when there is no server: the PostgreSQL tests are then skipped, with a reason).
set -uo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ]; then exit 0; fi
ver=$(ls /etc/postgresql | head -n1)
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "postgresql+psycopg://postgres@127.0.0.1:5432/test"
fi

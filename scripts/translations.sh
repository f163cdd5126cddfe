#!/usr/bin/env bash
# Re-extracts the UI strings, merges them into every catalogue and compiles the catalogues.
# Usage: scripts/translations.sh            (update + compile)
#        scripts/translations.sh init LANG  (start a new language)
set -euo pipefail
cd "$(dirname "$0")/../platform"
pybabel extract -F babel.cfg --no-location --sort-output -o translations/messages.pot .
if [ "${1:-}" = init ]; then
  pybabel init -i translations/messages.pot -d translations -l "$2"
fi
pybabel update --no-fuzzy-matching --ignore-obsolete -i translations/messages.pot -d translations
pybabel compile -d translations

#!/usr/bin/env bash
# Schemathesis (property-based fuzzing of the OpenAPI document, from PyPI),
# pinned in tests/fuzz/requirements.txt, in a virtualenv of its own under
# ~/.cache/mart/schemathesis (nothing is installed system-wide).
#   scripts/schemathesis.sh install   create the venv once (or when the pins change)
#   scripts/schemathesis.sh bin       print the executable's path (installing first)
set -euo pipefail
cd "$(dirname "$0")/.."
REQUIREMENTS=tests/fuzz/requirements.txt
ROOT=${MART_SCHEMATHESIS_ROOT:-$HOME/.cache/mart/schemathesis}
STAMP=$ROOT/requirements.sha256

install() {
  local want
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  if [ -x "$ROOT/bin/schemathesis" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then return; fi
  command -v python3 >/dev/null || scripts/install-debian-packages.sh python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || scripts/install-debian-packages.sh python3-venv
  echo "installing schemathesis into $ROOT (once)" >&2
  rm -rf "$ROOT"
  python3 -m venv "$ROOT"
  "$ROOT/bin/pip" install --quiet --disable-pip-version-check --requirement "$REQUIREMENTS"
  echo "$want" >"$STAMP"
}

case "${1:-}" in
  install) install ;;
  bin) install; echo "$ROOT/bin/schemathesis" ;;
  *) echo "usage: $0 install|bin" >&2; exit 2 ;;
esac

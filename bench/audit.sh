#!/usr/bin/env bash
# Known vulnerabilities in the installed dependencies (not part of CI: it needs the
# vulnerability service). Uses PyPI's own advisory data through pip-audit.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q pip-audit
python -m pip_audit --vulnerability-service pypi --progress-spinner off --desc on "$@"

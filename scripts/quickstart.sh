#!/usr/bin/env bash
# One command from a fresh machine to a guest's shell: set up, then boot the
# default guest and attach its console (Ctrl-] detaches).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bin/xenode create examples/debian.cfg -c "$@"

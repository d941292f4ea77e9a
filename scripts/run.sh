#!/usr/bin/env bash
# Install what is missing, build, and run the agent in the foreground with
# its default configuration (http://127.0.0.1:9464/metrics). Extra
# arguments go to the agent, e.g. scripts/run.sh --listen 0.0.0.0:9464
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec build/katascope "$@"

#!/usr/bin/env bash
# `make harness`: the release service in the background on a free port, the harness with its defaults against it
# (1000 requests at once, a generated 6 s 640x360 clip with audio, every answer decoded), then the service stopped.
# HARNESS_ARGS adds or overrides options, e.g. HARNESS_ARGS="--requests 100 --concurrency 100".
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
source scripts/service.sh
start_service --log-level info
echo "service at $SERVICE_URL" >&2
status=0
# shellcheck disable=SC2086
"$BIN/harness" --url "$SERVICE_URL" ${HARNESS_ARGS:-} || status=$?
exit $status

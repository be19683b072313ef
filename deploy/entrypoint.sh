#!/bin/sh
# Runs one service of the image by name (see deploy/Dockerfile).
set -eu
# tsx is loaded into node itself (not the tsx CLI, which would keep a second node process as
# parent): one process per container, which receives SIGTERM directly and shuts down gracefully.
# The loader and the tsconfig paths are found from /app.
cd /app
run() { exec node --import tsx "$@"; }
service="${1:-homeserver}"
[ "$#" -gt 0 ] && shift
case "$service" in
  homeserver|client-api|federation-ingress|room-server|persistence|fanout-sender)
    run "/app/apps/$service/src/main.ts" "$@" ;;
  generate-signing-key)
    run /app/deploy/generate-signing-key.ts "$@" ;;
  admin)
    run /app/tools/admin.ts "$@" ;;
  *)
    echo "unknown service '$service': use homeserver, client-api, federation-ingress, room-server, persistence, fanout-sender, generate-signing-key or admin" >&2
    exit 64 ;;
esac

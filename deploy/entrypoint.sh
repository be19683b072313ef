#!/bin/sh
# Runs one service of the image by name (see deploy/Dockerfile).
set -eu
service="${1:-homeserver}"
[ "$#" -gt 0 ] && shift
case "$service" in
  homeserver|client-api|federation-ingress|room-server|persistence|fanout-sender)
    exec /app/node_modules/.bin/tsx "/app/apps/$service/src/main.ts" "$@" ;;
  generate-signing-key)
    exec /app/node_modules/.bin/tsx /app/deploy/generate-signing-key.ts "$@" ;;
  admin)
    exec /app/node_modules/.bin/tsx /app/tools/admin.ts "$@" ;;
  *)
    echo "unknown service '$service': use homeserver, client-api, federation-ingress, room-server, persistence, fanout-sender, generate-signing-key or admin" >&2
    exit 64 ;;
esac

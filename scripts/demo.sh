#!/usr/bin/env bash
# The local demo: starts the servers, creates a CA in KMS whose access rules let the IAM user alice
# help herself, runs the real sign_key function behind the Lambda emulator, and has alice get a
# certificate with her own AWS identity (get_key request) and log in to a real sshd that trusts
# only the CA.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/servers.sh start
eval "$(scripts/servers.sh env)"
cargo build --workspace --bins --locked
PATH=$PWD/target/debug:$PATH
export SSHCA_BUCKET=${SSHCA_BUCKET:-sshca-demo}
demo=$(mktemp -d /tmp/sshca-demo.XXXXXX)
mkdir -m 700 "$demo/ssh"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$demo"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
aws_ls() { "$SSHCA_AWS_CLI" --endpoint-url "$SSHCA_TEST_LOCALSTACK" --output json "$@"; }

step "alice: an IAM user (LocalStack's IAM), with her own access key"
alice=alice-$(date +%s)
aws_ls iam create-user --user-name "$alice" >/dev/null
keys=$(aws_ls iam create-access-key --user-name "$alice")
alice_key=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessKey"]["AccessKeyId"])' <<<"$keys")
alice_secret=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessKey"]["SecretAccessKey"])' <<<"$keys")
echo "arn:aws:iam::000000000000:user/$alice"

step "sshca init demo: a user and a host CA in KMS, and access rules: IAM users alice-* may sign for themselves"
cat >"$demo/rules.json" <<RULES
[{"match": "arn:aws:iam::000000000000:user/alice-*", "grant": "user", "principals": ["{user}", "demo-login"], "max_ttl": 28800}]
RULES
sshca init demo --create-bucket --create-keys --principals demo-login --allowed-principals 'demo-login,alice-*' \
  --allowed-host-principals '*.demo.example.com' --rules "$demo/rules.json" >/dev/null
sshca show-policy demo
audience=$(sshca show-policy demo --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"]["audience"])')

step "the real sign_key function behind cargo-lambda's Lambda emulator"
port=$(free_port)
"$SSHCA_CARGO_LAMBDA" lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$port" >/dev/null 2>&1 </dev/null &
pids+=($!)
for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:$port/.rt/sign_key AWS_LAMBDA_FUNCTION_NAME=sign_key AWS_LAMBDA_FUNCTION_VERSION=1 \
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 sign_key >/dev/null 2>"$demo/function.log" </dev/null &
pids+=($!)
echo "Invoke API on 127.0.0.1:$port"

step "alice: get_key request — proves who she is, gets her own certificate, no admin in the loop"
AWS_ACCESS_KEY_ID=$alice_key AWS_SECRET_ACCESS_KEY=$alice_secret AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$port \
  get_key request -e demo --create-key --ssh-dir "$demo/ssh" --no-agent --audience "$audience"
ssh-keygen -L -f "$demo/ssh/id_ed25519_demo-cert.pub"

step "a real sshd on 127.0.0.1 that trusts only the CA (no authorized_keys)"
sshca ca-key demo >"$demo/trusted_user_ca.pub"
mkdir -p /run/sshd "$demo/principals"
ssh-keygen -q -t ed25519 -N '' -f "$demo/host_key"
user=$(id -un)
echo demo-login >"$demo/principals/$user"
sshd_port=$(free_port)
cat >"$demo/sshd_config" <<CONF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $demo/host_key
PidFile $demo/sshd.pid
TrustedUserCAKeys $demo/trusted_user_ca.pub
AuthorizedPrincipalsFile $demo/principals/%u
AuthorizedKeysFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
CONF
/usr/sbin/sshd -D -f "$demo/sshd_config" -E "$demo/sshd.log" </dev/null >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sshd_port") 2>/dev/null && break; sleep 0.05; done
echo "sshd listening on 127.0.0.1:$sshd_port"

step "ssh in with alice's certificate"
ssh -F /dev/null -p "$sshd_port" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$demo/ssh/id_ed25519_demo" "$user@127.0.0.1" \
    'echo "logged in to $(hostname) as $(whoami) with an sshca certificate"'

step "the audit trail names alice's proven identity"
sshca audit demo --since -1h | head -3

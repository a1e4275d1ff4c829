#!/usr/bin/env bash
# The local demo: starts the servers, creates a CA in KMS, signs a user key, installs the
# certificate with get_key, and logs in to a real sshd that trusts only the CA.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/servers.sh start
eval "$(scripts/servers.sh env)"
cargo build --workspace --bins --locked
PATH=$PWD/target/debug:$PATH
export SSHCA_BUCKET=${SSHCA_BUCKET:-sshca-demo}
demo=$(mktemp -d /tmp/sshca-demo.XXXXXX)
mkdir -m 700 "$demo/ssh"
sshd_pid=
trap '[ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null; rm -rf "$demo"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "sshca init demo: a user CA and a host CA in KMS (ECC_NIST_P256), policy in s3://$SSHCA_BUCKET"
sshca init demo --create-bucket --create-keys --principals demo-login | tee "$demo/cas.pub"
sshca ca-key demo >"$demo/trusted_user_ca.pub"

step "a user key pair (the private key never leaves this machine)"
ssh-keygen -q -t ed25519 -N '' -C alice -f "$demo/ssh/id_ed25519"
cat "$demo/ssh/id_ed25519.pub"

step "sshca sign: the admin signs alice's key for 1 hour"
url=$(sshca sign --local -e demo -u alice@example.com -p "$demo/ssh/id_ed25519.pub" -r "local demo" -t +1h)

step "get_key: alice installs the certificate next to her key"
get_key "$url" --ssh-dir "$demo/ssh" --no-agent --ca-key "$demo/trusted_user_ca.pub"
ssh-keygen -L -f "$demo/ssh/id_ed25519-cert.pub"

step "a real sshd on 127.0.0.1 that trusts only the CA (no authorized_keys)"
mkdir -p /run/sshd "$demo/principals"
ssh-keygen -q -t ed25519 -N '' -f "$demo/host_key"
user=$(id -un)
echo demo-login >"$demo/principals/$user"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$demo/sshd_config" <<CONF
Port $port
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
sshd_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
echo "sshd listening on 127.0.0.1:$port"

step "ssh in with the certificate"
ssh -F /dev/null -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$demo/ssh/id_ed25519" "$user@127.0.0.1" \
    'echo "logged in to $(hostname) as $(whoami) with an sshca certificate"'

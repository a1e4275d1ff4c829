//! A server of one environment as its configuration roll-out leaves it: a host certificate for
//! [`HOST`], the user CA keys and the KRL in files, and a real sshd with a given configuration for
//! `sshca doctor` to check (`tests/fleet.rs`, and the installed package in `tests/packages.rs`).

use std::path::PathBuf;
use std::process::Output;

use crate::{cert_path, keygen, Sshd, World};

pub const ENV: &str = "staging";
pub const HOST: &str = "web1.example.com";

/// An environment with a host certificate for `HOST`, its user CA keys and KRL in files, as a
/// server would hold them.
pub struct Server {
    pub world: World,
    pub host_key: PathBuf,
    pub user_ca_file: PathBuf,
    pub krl: PathBuf,
}

impl Server {
    /// The server of `world`, whose `sshca` (the built one, or an installed one) sets it up.
    pub fn on(world: World) -> Self {
        world.init(ENV, &["--principals", "deploy", "--allowed-principals", "deploy,other", "--allowed-host-principals", "*.example.com"]);
        let host_key = keygen(world.dir.path(), "ssh_host_ed25519_key", "ed25519", None, "");
        world.sshca_ok(&["renew-host", "--local", "-e", ENV, "-n", HOST, "-k", host_key.to_str().unwrap()]);
        let server = Server { user_ca_file: world.path("sshca_user_ca.pub"), krl: world.path("sshca_revoked.krl"), world, host_key };
        server.refresh();
        server
    }

    /// What a server's config roll-out and KRL timer do: the user CA keys and the KRL, fresh.
    pub fn refresh(&self) {
        std::fs::write(&self.user_ca_file, self.world.sshca_ok(&["config", ENV, "--only", "user-ca-keys"])).unwrap();
        self.world.sshca_ok(&["krl", ENV, "-o", self.krl.to_str().unwrap()]);
    }

    /// The healthy configuration, with `replace` applied (keyword → line; "" drops it).
    pub fn config(&self, replace: &[(&str, &str)]) -> String {
        let mut lines = vec![
            ("TrustedUserCAKeys", format!("TrustedUserCAKeys {}", self.user_ca_file.display())),
            ("AuthorizedPrincipalsFile", "AuthorizedPrincipalsFile {dir}/principals/%u".to_owned()),
            ("AuthorizedKeysFile", "AuthorizedKeysFile none".to_owned()),
            ("HostCertificate", format!("HostCertificate {}", cert_path(&self.host_key).display())),
            ("RevokedKeys", format!("RevokedKeys {}", self.krl.display())),
            ("PasswordAuthentication", "PasswordAuthentication no".to_owned()),
            ("KbdInteractiveAuthentication", "KbdInteractiveAuthentication no".to_owned()),
        ];
        for (keyword, line) in replace {
            let slot = lines.iter_mut().find(|(k, _)| k == keyword).expect("a known keyword");
            slot.1 = (*line).to_owned();
        }
        lines.into_iter().map(|(_, line)| line + "\n").collect()
    }

    /// Starts a real sshd with `config`, then runs `sshca doctor` on it.
    pub fn doctor(&self, config: &str, extra: &[&str]) -> (Output, String) {
        let sshd = Sshd::with_config("", &["deploy"], Some(&self.host_key), config);
        let config_path = sshd.config_path();
        let mut args = vec!["doctor", ENV, "--sshd-config", config_path.to_str().unwrap(), "-n", HOST];
        args.extend_from_slice(extra);
        let output = self.world.sshca(&args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(!stdout.contains('\x1b'), "colour when piped: {stdout}");
        (output, stdout)
    }
}

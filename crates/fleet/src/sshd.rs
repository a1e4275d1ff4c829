//! The effective sshd configuration, as `sshd -T` prints it: `Include`s resolved and defaults
//! filled in, which is what the running server does, unlike the file as written.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Keywords (lower-case, as `sshd -T` prints them) and their values, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectiveConfig(BTreeMap<String, Vec<String>>);

impl EffectiveConfig {
    /// Runs `sshd -T -f CONFIG` (it needs to read the host keys, so run it as root).
    pub fn read(sshd: &Path, config: &Path) -> Result<Self, String> {
        let output = Command::new(sshd)
            .arg("-T")
            .arg("-f")
            .arg(config)
            .output()
            .map_err(|err| format!("cannot run {}: {err} (is openssh-server installed? pass --sshd PATH)", sshd.display()))?;
        if !output.status.success() {
            return Err(format!(
                "`{} -T -f {}` failed: {} (run it as root; fix what it names)",
                sshd.display(),
                config.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self::parse(&String::from_utf8_lossy(&output.stdout)))
    }

    pub fn parse(text: &str) -> Self {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some((keyword, value)) = line.trim().split_once(' ') {
                values.entry(keyword.to_ascii_lowercase()).or_default().push(value.trim().to_owned());
            }
        }
        Self(values)
    }

    /// Every value of `keyword` (several for `HostKey`, `HostCertificate`).
    pub fn all(&self, keyword: &str) -> &[String] {
        self.0.get(keyword).map(Vec::as_slice).unwrap_or_default()
    }

    /// The value of `keyword`, unless it is unset or `none`.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).first().map(String::as_str).filter(|value| !value.eq_ignore_ascii_case("none"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_repeat_and_none_is_unset() {
        let config = EffectiveConfig::parse(
            "hostkey /a\nhostkey /b\nrevokedkeys none\nauthorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2\n",
        );
        assert_eq!(config.all("hostkey"), ["/a", "/b"]);
        assert_eq!(config.get("revokedkeys"), None);
        assert_eq!(config.get("authorizedkeysfile"), Some(".ssh/authorized_keys .ssh/authorized_keys2"));
        assert_eq!(config.get("trustedusercakeys"), None);
    }
}

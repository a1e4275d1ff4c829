//! The per-environment policy (`config/<env>.json`) and its judgement of a request: which
//! principals, validity, extensions and critical options a certificate gets, or why not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, PublicKey};

use crate::access::Access;
use crate::error::IssueError;
use crate::identity::Providers;
use crate::pattern::matches_any;
use crate::request::{self, CertKind, SignRequest};

/// How to reach a CA private key. It never leaves KMS, or leaves S3 only sealed by KMS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CaKeyRef {
    /// An asymmetric SIGN_VERIFY key in KMS (ECC_NIST_P256, ECC_NIST_P384, RSA_3072/4096,
    /// ECC_NIST_EDWARDS25519 where KMS offers it).
    Kms { key_id: String },
    /// An Ed25519 private key encrypted with KMS `Encrypt`, stored at `object` in the bucket
    /// (for KMS deployments without Ed25519 keys, as Netflix BLESS does).
    SealedEd25519 { object: String },
}

fn default_extensions() -> BTreeMap<String, String> {
    ["permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc"]
        .into_iter()
        .map(|name| (name.to_owned(), String::new()))
        .collect()
}

fn default_allowed_extensions() -> Vec<String> {
    default_extensions().into_keys().collect()
}

fn default_key_types() -> Vec<String> {
    ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"].into_iter().map(str::to_owned).collect()
}

/// The public key types sshca signs: `allowed_key_types` and a rule's `key_types` name these.
pub const KNOWN_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

const fn default_min_rsa_bits() -> u32 {
    ABSOLUTE_MIN_RSA_BITS
}
const fn default_ttl() -> u64 {
    2 * 3600
}
const fn default_max_ttl() -> u64 {
    24 * 3600
}
const fn default_host_max_ttl() -> u64 {
    90 * 24 * 3600
}
const fn default_host_ttl() -> u64 {
    30 * 24 * 3600
}
const fn default_clock_skew() -> u64 {
    300
}
const fn default_backdate() -> u64 {
    30
}
const fn default_url_ttl() -> u64 {
    2 * 3600
}

/// RSA keys below this size are refused whatever the policy says.
pub const ABSOLUTE_MIN_RSA_BITS: u32 = 2048;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub environment: String,
    pub user_ca: Option<CaKeyRef>,
    pub host_ca: Option<CaKeyRef>,
    /// CA rotation: the key that becomes current at `sshca rotate --promote`. Servers and clients
    /// are told about it (`sshca config`) before it signs anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_user_ca: Option<CaKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_host_ca: Option<CaKeyRef>,
    /// The key replaced by the last promotion: still trusted (its certificates are still valid)
    /// until `sshca rotate --retire`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_user_ca: Option<CaKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_host_ca: Option<CaKeyRef>,
    /// Principals of a user certificate when the request names none.
    #[serde(default)]
    pub default_principals: Vec<String>,
    /// Patterns (`*` and `?` wildcards) a user certificate's principals must match.
    #[serde(default)]
    pub allowed_principals: Vec<String>,
    /// Patterns a host certificate's principals (host names, addresses) must match.
    #[serde(default)]
    pub allowed_host_principals: Vec<String>,
    #[serde(default = "default_ttl")]
    pub default_ttl: u64,
    #[serde(default = "default_max_ttl")]
    pub max_ttl: u64,
    #[serde(default = "default_host_max_ttl")]
    pub host_max_ttl: u64,
    /// Lifetime of host certificates when the request names none: hosts renew daily or weekly,
    /// so this is weeks, never the user TTL.
    #[serde(default = "default_host_ttl")]
    pub host_default_ttl: u64,
    #[serde(default = "default_extensions")]
    pub default_extensions: BTreeMap<String, String>,
    #[serde(default = "default_allowed_extensions")]
    pub allowed_extensions: Vec<String>,
    #[serde(default)]
    pub allowed_critical_options: Vec<String>,
    /// Public key types that may be certified (`ssh-rsa` means RSA keys, signed with SHA-512).
    #[serde(default = "default_key_types")]
    pub allowed_key_types: Vec<String>,
    #[serde(default = "default_min_rsa_bits")]
    pub min_rsa_bits: u32,
    /// `valid_after` is set this many seconds in the past, for servers whose clocks run behind.
    #[serde(default = "default_backdate")]
    pub backdate_seconds: u64,
    /// How far a requested start of validity, or a proof's date, may lie from the function's clock.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u64,
    /// Lifetime of the download link; never longer than the certificate.
    #[serde(default = "default_url_ttl")]
    pub url_ttl: u64,
    /// Who may get what (see [`crate::access`]). A policy without it serves no one.
    #[serde(default)]
    pub access: Access,
}

impl Policy {
    /// A policy with the defaults and no CA keys yet.
    pub fn new(environment: &str) -> Self {
        Self {
            environment: environment.to_owned(),
            user_ca: None,
            host_ca: None,
            next_user_ca: None,
            next_host_ca: None,
            previous_user_ca: None,
            previous_host_ca: None,
            default_principals: Vec::new(),
            allowed_principals: Vec::new(),
            allowed_host_principals: Vec::new(),
            default_ttl: default_ttl(),
            max_ttl: default_max_ttl(),
            host_max_ttl: default_host_max_ttl(),
            host_default_ttl: default_host_ttl(),
            default_extensions: default_extensions(),
            allowed_extensions: default_allowed_extensions(),
            allowed_critical_options: Vec::new(),
            allowed_key_types: default_key_types(),
            min_rsa_bits: default_min_rsa_bits(),
            backdate_seconds: default_backdate(),
            clock_skew_seconds: default_clock_skew(),
            url_ttl: default_url_ttl(),
            access: Access::default(),
        }
    }

    /// Checks that the policy itself makes sense, so that a bad `sshca init` fails at once.
    pub fn validate(&self, providers: &Providers) -> Result<(), IssueError> {
        request::check_environment(&self.environment)?;
        let problem = |message: String| Err(IssueError::Configuration(message));
        if self.default_ttl == 0 || self.default_ttl > self.max_ttl {
            return problem(format!("default TTL {}s must be above 0 and at most the max TTL {}s", self.default_ttl, self.max_ttl));
        }
        if self.host_default_ttl == 0 || self.host_default_ttl > self.host_max_ttl {
            return problem(format!(
                "host default TTL {}s must be above 0 and at most the host max TTL {}s",
                self.host_default_ttl, self.host_max_ttl
            ));
        }
        // Policy numbers are added to the clock: keep every sum far from overflowing.
        const TEN_YEARS: u64 = 10 * 365 * 86_400;
        for (name, value) in [
            ("max_ttl", self.max_ttl),
            ("host_max_ttl", self.host_max_ttl),
            ("backdate_seconds", self.backdate_seconds),
            ("clock_skew_seconds", self.clock_skew_seconds),
            ("url_ttl", self.url_ttl),
        ] {
            if value > TEN_YEARS {
                return problem(format!("{name} {value}s is more than ten years"));
            }
        }
        if self.min_rsa_bits < ABSOLUTE_MIN_RSA_BITS {
            return problem(format!(
                "min_rsa_bits {} is below {ABSOLUTE_MIN_RSA_BITS}: RSA keys that small are refused anyway",
                self.min_rsa_bits
            ));
        }
        let patterns = self
            .allowed_principals
            .iter()
            .chain(&self.allowed_host_principals)
            .chain(self.access.rules.iter().flat_map(|rule| &rule.principals));
        if let Some(negated) = patterns.into_iter().find(|pattern| pattern.contains('!')) {
            return problem(format!(
                "pattern {negated:?} uses '!', which sshca does not support (OpenSSH's negation would be read as a literal '!'): list what is allowed instead"
            ));
        }
        let user_keys = [&self.user_ca, &self.next_user_ca, &self.previous_user_ca];
        let host_keys = [&self.host_ca, &self.next_host_ca, &self.previous_host_ca];
        if let Some(both) = user_keys.iter().flat_map(|k| k.as_ref()).find(|k| host_keys.iter().any(|h| h.as_ref() == Some(*k))) {
            return problem(format!(
                "{both:?} is both a user and a host CA key: a host certificate's signer must never be trusted for user logins, so give each role its own key (`sshca rotate --role user|host`)"
            ));
        }
        for principal in &self.default_principals {
            request::check_principal(principal)?;
            if !matches_any(&self.allowed_principals, principal) {
                return problem(format!("default principal {principal:?} is not among the allowed principals"));
            }
        }
        for name in self.default_extensions.keys() {
            if !self.allowed_extensions.contains(name) {
                return problem(format!("default extension {name:?} is not among the allowed extensions"));
            }
        }
        if let Some(unknown) = self.allowed_key_types.iter().find(|name| !KNOWN_KEY_TYPES.contains(&name.as_str())) {
            return problem(format!("key type {unknown:?} is not one sshca can sign (known: {})", KNOWN_KEY_TYPES.join(", ")));
        }
        for (index, rule) in self.access.rules.iter().enumerate() {
            if let Some(other) = rule.key_types.iter().flatten().find(|name| !self.allowed_key_types.contains(name)) {
                return problem(format!(
                    "access rule {} signs {other} keys, which the environment does not (allowed: {}): add it with `sshca init {} --key-types`",
                    index + 1,
                    self.allowed_key_types.join(","),
                    self.environment
                ));
            }
        }
        self.access.validate(&self.environment, |rule| providers.check_rule(rule), |rule| providers.user_name_scope(rule))
    }

    pub fn ca(&self, kind: CertKind) -> Result<&CaKeyRef, IssueError> {
        let (ca, flag) = match kind {
            CertKind::User => (&self.user_ca, "--user-ca-key"),
            CertKind::Host => (&self.host_ca, "--host-ca-key"),
        };
        ca.as_ref().ok_or_else(|| {
            IssueError::Configuration(format!(
                "environment {:?} has no {} CA: set one with `sshca init {} {flag} KMS_KEY_ID` (or --create-keys)",
                self.environment,
                kind.as_str(),
                self.environment
            ))
        })
    }

    /// The CA slots of one kind: (current, next, previous).
    pub fn ca_slots(&mut self, kind: CertKind) -> [&mut Option<CaKeyRef>; 3] {
        match kind {
            CertKind::User => [&mut self.user_ca, &mut self.next_user_ca, &mut self.previous_user_ca],
            CertKind::Host => [&mut self.host_ca, &mut self.next_host_ca, &mut self.previous_host_ca],
        }
    }

    /// Every CA key servers or clients must trust for `kind`: the current one, the next one during
    /// a rotation, and the previous one until it is retired.
    /// Each comes with its role: "current", "next" or "previous".
    pub fn trusted_cas(&self, kind: CertKind) -> Vec<(&'static str, &CaKeyRef)> {
        let slots = match kind {
            CertKind::User => [&self.user_ca, &self.next_user_ca, &self.previous_user_ca],
            CertKind::Host => [&self.host_ca, &self.next_host_ca, &self.previous_host_ca],
        };
        ["current", "next", "previous"].into_iter().zip(slots).filter_map(|(role, slot)| Some((role, slot.as_ref()?))).collect()
    }

    /// Refuses public keys the environment does not accept: DSA always, RSA below the minimum size,
    /// and any type not in `allowed_key_types`.
    pub fn check_public_key(&self, key: &PublicKey) -> Result<(), IssueError> {
        let algorithm = key.algorithm();
        if algorithm == Algorithm::Dsa {
            return Err(IssueError::InvalidPublicKey(
                "DSA keys are insecure and refused: generate a new key with `ssh-keygen -t ed25519`".into(),
            ));
        }
        if let KeyData::Rsa(rsa) = key.key_data() {
            let bits = mpint_bits(rsa.n.as_positive_bytes().unwrap_or_default());
            let minimum = self.min_rsa_bits.max(ABSOLUTE_MIN_RSA_BITS);
            if bits < minimum {
                return Err(IssueError::InvalidPublicKey(format!(
                    "this RSA key has {bits} bits; at least {minimum} are required: generate a new key with `ssh-keygen -t ed25519` (or `-t rsa -b 3072`)"
                )));
            }
        }
        let name = algorithm.as_str();
        if !self.allowed_key_types.iter().any(|allowed| allowed == name) {
            return Err(IssueError::PolicyViolation(format!(
                "key type {name} is not allowed in environment {:?} (allowed: {}): use one of those",
                self.environment,
                self.allowed_key_types.join(", ")
            )));
        }
        Ok(())
    }

    /// Decides what the certificate will say, or why the request is refused.
    pub fn plan(&self, request: &SignRequest, now: u64) -> Result<Plan, IssueError> {
        let principals = self.principals(request)?;
        let (valid_after, valid_before) = self.validity(request, now)?;
        let (extensions, critical_options) = self.options(request)?;
        let url_expires_at = valid_before.min(now.saturating_add(self.url_ttl));
        Ok(Plan { principals, valid_after, valid_before, extensions, critical_options, url_expires_at })
    }

    fn principals(&self, request: &SignRequest) -> Result<Vec<String>, IssueError> {
        let (requested, allowed, what) = match request.cert_type {
            CertKind::User => (
                request.principals.clone().unwrap_or_else(|| self.default_principals.clone()),
                &self.allowed_principals,
                "allowed_principals",
            ),
            CertKind::Host => (request.principals.clone().unwrap_or_default(), &self.allowed_host_principals, "allowed_host_principals"),
        };
        if requested.is_empty() {
            return Err(IssueError::InvalidRequest(match request.cert_type {
                CertKind::User => format!(
                    "no principals: name them with --principal, or give environment {:?} default principals (`sshca init {} --principals …`)",
                    self.environment, self.environment
                ),
                CertKind::Host => "a host certificate needs the host's names as principals (-n web1.example.com,10.0.0.5)".into(),
            }));
        }
        if requested.len() > request::MAX_PRINCIPALS {
            return Err(IssueError::InvalidRequest(format!(
                "{} principals requested; at most {} fit in one certificate",
                requested.len(),
                request::MAX_PRINCIPALS
            )));
        }
        for principal in &requested {
            request::check_principal(principal)?;
            if !matches_any(allowed, principal) {
                return Err(IssueError::PolicyViolation(format!(
                    "principal {principal:?} is not allowed in environment {:?} (allowed: {}): ask for an allowed one, or add it to {what} with `sshca init`",
                    self.environment,
                    if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }
                )));
            }
        }
        let mut principals = requested;
        principals.dedup();
        Ok(principals)
    }

    fn validity(&self, request: &SignRequest, now: u64) -> Result<(u64, u64), IssueError> {
        let (default_ttl, max_ttl) = match request.cert_type {
            CertKind::User => (self.default_ttl, self.max_ttl),
            CertKind::Host => (self.host_default_ttl, self.host_max_ttl),
        };
        let invalid = |message: String| Err(IssueError::InvalidRequest(message));
        if request.ttl == Some(0) {
            return invalid("ttl must be above 0 seconds (e.g. -t +2h)".into());
        }
        if request.ttl.is_some() && request.valid_before.is_some() {
            return invalid("give either ttl or valid_before, not both".into());
        }
        // A certificate starts now, give or take the clock-skew allowance: one that starts later
        // would let access be stockpiled that "expires by itself" only after someone has left.
        let earliest = now.saturating_sub(self.clock_skew_seconds.max(self.backdate_seconds));
        let latest = now + self.clock_skew_seconds;
        let valid_after = match request.valid_after {
            Some(after) if after > latest => {
                return Err(IssueError::PolicyViolation(format!(
                    "a certificate may not start in the future (valid_after is {}s from now; at most {}s of clock skew is allowed): leave the start out",
                    after - now,
                    self.clock_skew_seconds
                )))
            }
            Some(after) if after < earliest => {
                return invalid(format!(
                    "a certificate may not start in the past (valid_after is {}s ago; at most {}s is allowed): leave the start out",
                    now - after,
                    self.clock_skew_seconds.max(self.backdate_seconds)
                ))
            }
            Some(after) => after,
            None => now.saturating_sub(self.backdate_seconds),
        };
        let start = request.valid_after.unwrap_or(now);
        let valid_before = match (request.valid_before, request.ttl) {
            (Some(before), _) => before,
            (None, ttl) => start
                .checked_add(ttl.unwrap_or(default_ttl))
                .ok_or_else(|| IssueError::InvalidRequest("ttl is too large: it overflows the clock".into()))?,
        };
        if valid_before <= now {
            return invalid(format!(
                "the certificate would already have expired (valid_before {valid_before} is not after now, {now}): ask for a time in the future"
            ));
        }
        if valid_after >= valid_before {
            return invalid(format!("valid_after ({valid_after}) must be before valid_before ({valid_before})"));
        }
        // The backdate is slack for clock skew, not lifetime the requester asked for.
        let lifetime = valid_before - valid_after.max(now);
        if lifetime > max_ttl {
            return Err(IssueError::PolicyViolation(format!(
                "a validity of {} is longer than the {} allowed for {} certificates in environment {:?}: ask for a shorter one",
                human_duration(lifetime),
                human_duration(max_ttl),
                request.cert_type.as_str(),
                self.environment
            )));
        }
        Ok((valid_after, valid_before))
    }

    #[allow(clippy::type_complexity)]
    fn options(&self, request: &SignRequest) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), IssueError> {
        let extensions = match (&request.extensions, request.cert_type) {
            (Some(requested), _) => requested.clone(),
            (None, CertKind::User) => self.default_extensions.clone(),
            (None, CertKind::Host) => BTreeMap::new(),
        };
        if request.cert_type == CertKind::Host && !extensions.is_empty() {
            return Err(IssueError::InvalidRequest("host certificates carry no extensions: drop them from the request".into()));
        }
        for (name, value) in &extensions {
            request::check_option("extension", name, value)?;
            if !self.allowed_extensions.contains(name) {
                return Err(IssueError::PolicyViolation(format!(
                    "extension {name:?} is not allowed in environment {:?} (allowed: {})",
                    self.environment,
                    self.allowed_extensions.join(", ")
                )));
            }
        }
        let critical_options = request.critical_options.clone().unwrap_or_default();
        if request.cert_type == CertKind::Host && !critical_options.is_empty() {
            return Err(IssueError::InvalidRequest("host certificates carry no critical options: drop them from the request".into()));
        }
        for (name, value) in &critical_options {
            request::check_option("critical option", name, value)?;
            if !self.allowed_critical_options.contains(name) {
                return Err(IssueError::PolicyViolation(format!(
                    "critical option {name:?} is not allowed in environment {:?} (allowed: {})",
                    self.environment,
                    if self.allowed_critical_options.is_empty() { "none".to_owned() } else { self.allowed_critical_options.join(", ") }
                )));
            }
        }
        Ok((extensions, critical_options))
    }
}

/// What the policy decided a certificate says.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub extensions: BTreeMap<String, String>,
    pub critical_options: BTreeMap<String, String>,
    pub url_expires_at: u64,
}

fn mpint_bits(bytes: &[u8]) -> u32 {
    match bytes.iter().position(|&b| b != 0) {
        Some(first) => (bytes.len() - first) as u32 * 8 - bytes[first].leading_zeros(),
        None => 0,
    }
}

pub use sshca_proto::time::{human_duration, human_duration_approx};

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let mut policy = Policy::new("staging");
        policy.default_principals = vec!["deploy".into()];
        policy.allowed_principals = vec!["deploy".into(), "web-*".into()];
        policy
    }

    fn request() -> SignRequest {
        SignRequest { environment: "staging".into(), username: "jane".into(), reason: "testing".into(), ..Default::default() }
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(8 * 3600), "8h");
        assert_eq!(human_duration(90 * 86_400), "90d");
        assert_eq!(human_duration(9000), "2h30m");
        assert_eq!(human_duration(0), "0s");
    }

    #[test]
    fn defaults_fill_in_principals_validity_and_extensions() {
        let plan = policy().plan(&request(), NOW).unwrap();
        assert_eq!(plan.principals, ["deploy"]);
        assert_eq!(plan.valid_after, NOW - 30);
        assert_eq!(plan.valid_before, NOW + 2 * 3600);
        assert!(plan.extensions.contains_key("permit-pty"));
        assert_eq!(plan.url_expires_at, NOW + 2 * 3600);
    }

    #[test]
    fn url_never_outlives_the_certificate() {
        let plan = policy().plan(&SignRequest { ttl: Some(600), ..request() }, NOW).unwrap();
        assert_eq!(plan.url_expires_at, NOW + 600);
    }

    #[test]
    fn principals_outside_policy_are_refused() {
        let err = policy().plan(&SignRequest { principals: Some(vec!["root".into()]), ..request() }, NOW).unwrap_err();
        assert_eq!(err.error_type(), "PolicyViolation");
        assert!(err.to_string().contains("\"root\""), "{err}");
    }

    #[test]
    fn bad_validity_is_refused() {
        let p = policy();
        let cases = [
            SignRequest { ttl: Some(0), ..request() },
            SignRequest { ttl: Some(25 * 3600), ..request() },
            SignRequest { ttl: Some(100 * 365 * 86_400), ..request() },
            SignRequest { ttl: Some(u64::MAX), ..request() },
            SignRequest { valid_after: Some(NOW + 100), valid_before: Some(NOW + 50), ..request() },
            SignRequest { valid_before: Some(NOW - 1), ..request() },
            SignRequest { valid_before: Some(NOW + 10), ttl: Some(10), ..request() },
        ];
        for case in cases {
            assert!(p.plan(&case, NOW).is_err(), "{case:?} accepted");
        }
        // exactly the maximum is fine
        p.plan(&SignRequest { ttl: Some(24 * 3600), ..request() }, NOW).unwrap();
    }

    #[test]
    fn options_must_be_allowed() {
        let mut force = BTreeMap::new();
        force.insert("force-command".to_owned(), "/bin/sh".to_owned());
        let err = policy().plan(&SignRequest { critical_options: Some(force.clone()), ..request() }, NOW).unwrap_err();
        assert_eq!(err.error_type(), "PolicyViolation");
        let mut allowing = policy();
        allowing.allowed_critical_options.push("force-command".into());
        let plan = allowing.plan(&SignRequest { critical_options: Some(force), ..request() }, NOW).unwrap();
        assert_eq!(plan.critical_options["force-command"], "/bin/sh");
    }

    #[test]
    fn negated_patterns_are_refused_not_read_literally() {
        let mut p = policy();
        p.allowed_principals.push("!root".into());
        assert!(p.validate(&crate::testing::providers()).unwrap_err().to_string().contains("uses '!'"));
    }

    #[test]
    fn dsa_and_small_rsa_keys_are_refused() {
        let p = policy();
        let small_rsa = PublicKey::from_openssh(include_str!("../testdata/rsa1024.pub")).unwrap();
        let err = p.check_public_key(&small_rsa).unwrap_err();
        assert!(err.to_string().contains("1024 bits"), "{err}");
        let dsa = PublicKey::from_openssh(include_str!("../testdata/dsa.pub")).unwrap();
        assert!(p.check_public_key(&dsa).unwrap_err().to_string().contains("DSA"));
    }
}

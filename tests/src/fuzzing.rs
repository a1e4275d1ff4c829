//! What the fuzz targets (`fuzz/`) run, so that the inputs they found replay as regression tests
//! (`tests/tests/fuzz_regressions.rs`). Each returns normally for any input, accepted or refused;
//! a panic is the bug.

use sshca_core::policy::Policy;
use sshca_core::CaKeyRef;

/// A request body as the function gets it: parsed, checked, and planned against a policy with
/// wildcards, critical options and extensions to exercise.
pub fn request(body: &[u8]) {
    let Ok(request) = sshca_core::request::parse_request_bytes(body) else { return };
    if sshca_core::request::check_syntax(&request).is_err() {
        return;
    }
    let mut policy = Policy::new("staging");
    policy.user_ca = Some(CaKeyRef::Kms { key_id: "fuzz".into() });
    policy.default_principals = vec!["deploy".into()];
    policy.allowed_principals = vec!["deploy".into(), "web-*".into(), "db?".into()];
    policy.allowed_host_principals = vec!["*.example.com".into()];
    policy.allowed_critical_options = vec!["source-address".into()];
    if let Some(text) = &request.public_key {
        let Ok(key) = sshca_core::request::parse_public_key(text) else { return };
        if policy.check_public_key(&key).is_err() {
            return;
        }
    }
    let _ = policy.plan(&request, 1_800_000_000);
}

/// A downloaded certificate as `get_key` reads it: parsed, then its signature and validity checked.
pub fn certificate(body: &[u8]) {
    if let Ok(certificate) = get_key::verify::parse(body) {
        let _ = get_key::verify::check(&certificate, &[], 1_800_000_000);
    }
}

//! The signing request and response (the JSON contract of `sign_key`), and the syntax checks
//! that do not need the environment's policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ssh_key::PublicKey;

use crate::error::IssueError;
use sha2::{Digest, Sha256};

use crate::approval::{PendingAnswer, RecordedAnswer, Verdict};
use crate::proof::{hex, Proof};

pub const MAX_REASON_CHARS: usize = 256;
/// The reason `get_key request` gives when its user names none: enough for a routine
/// certificate, never for break glass, which must say what the incident is.
pub const DEFAULT_REQUEST_REASON: &str = "get_key request";
const MAX_USERNAME_CHARS: usize = 128;
const MAX_ENVIRONMENT_CHARS: usize = 63;
const MAX_PRINCIPAL_CHARS: usize = 255;
pub const MAX_PRINCIPALS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    #[default]
    User,
    Host,
}

impl CertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CertKind::User => "user",
            CertKind::Host => "host",
        }
    }
}

/// A request to certify a public key. Times are Unix seconds; `ttl` is seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    pub environment: String,
    /// Whose certificate: a user name or, for host certificates, the host's name. Callers that
    /// may sign only for themselves leave it out: their proven identity names them.
    #[serde(default)]
    pub username: String,
    /// OpenSSH one-line public key; when absent the cached key of the user is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// When absent, the environment's default principals (user certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
    #[serde(default)]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    #[serde(default)]
    pub cert_type: CertKind,
    /// When absent, the environment's default extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_options: Option<BTreeMap<String, String>>,
    /// A free-text label of who asks; the proven identity is what the audit trail trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Makes every request unique, so that its proof of identity binds it and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Claims the certificate of this approved request (its id), under a rule that requires approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_request: Option<String>,
    /// Self-approval under a break-glass rule: issued at once, short, recorded and notified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// An approver's verdict on a pending request, in place of a key to certify (`reason` is its note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The caller's proof of identity (see [`crate::proof`]); bound to every other field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Proof>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignResponse {
    pub serial: u64,
    pub key_id: String,
    /// The certificate in OpenSSH one-line format.
    pub certificate: String,
    pub download_url: String,
    pub url_expires_at: u64,
    pub valid_after: u64,
    pub valid_before: u64,
    pub ca_fingerprint: String,
    /// The fingerprint of the key that was signed.
    pub public_key_fingerprint: String,
    /// The proven caller (an IAM ARN), or `None` for an unproven request.
    pub caller: Option<String>,
    /// A link to the environment's published KRL (until `url_expires_at`), for clients'
    /// `RevokedHostKeys`; it answers 404 while nothing was ever revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub krl_url: Option<String>,
}

/// What `sign_key` answers: a certificate, a request recorded as waiting for approval, or a
/// verdict recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Issued(SignResponse),
    Pending(PendingAnswer),
    Recorded(RecordedAnswer),
}

/// The SHA-256 (hex) of the canonical form of `request`: its JSON without the `identity` field,
/// keys sorted, no whitespace, absent optional fields left out.
pub fn request_hash(request: &SignRequest) -> String {
    let value = serde_json::to_value(request).expect("a request serializes");
    let sorted: BTreeMap<String, serde_json::Value> = match value {
        serde_json::Value::Object(fields) => fields.into_iter().filter(|(name, _)| name != "identity").collect(),
        _ => unreachable!("a request serializes to an object"),
    };
    let canonical = serde_json::to_vec(&sorted).expect("a map serializes");
    hex(&Sha256::digest(canonical))
}

/// Environment names become S3 prefixes: lower-case letters, digits, `-` and `_`.
pub fn check_environment(environment: &str) -> Result<(), IssueError> {
    let ok = !environment.is_empty()
        && environment.len() <= MAX_ENVIRONMENT_CHARS
        && environment.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && environment.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(IssueError::InvalidRequest(format!(
            "environment {environment:?} is not a valid name: use 1-{MAX_ENVIRONMENT_CHARS} lower-case letters, digits, '-' or '_', starting with a letter or digit (e.g. staging)"
        )))
    }
}

/// User names become part of S3 keys and of the certificate's key id.
pub fn check_username(username: &str) -> Result<(), IssueError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+');
    let ok = !username.is_empty()
        && username.chars().count() <= MAX_USERNAME_CHARS
        && username.chars().all(allowed)
        && !username.starts_with('.')
        && !username.contains("..");
    if ok {
        Ok(())
    } else {
        Err(IssueError::InvalidRequest(format!(
            "user name {:?} is not valid: use 1-{MAX_USERNAME_CHARS} characters from letters, digits, '.', '_', '-', '@', '+' (no '/', no '..', not starting with '.'), e.g. jane@example.com",
            truncate_for_message(username)
        )))
    }
}

pub fn check_reason(reason: &str) -> Result<(), IssueError> {
    if reason.trim().is_empty() {
        return Err(IssueError::InvalidRequest(
            "a reason is required: say why this certificate is needed (-r 'deploy hotfix #123')".into(),
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(IssueError::InvalidRequest(format!(
            "the reason is {} characters long; keep it to {MAX_REASON_CHARS}",
            reason.chars().count()
        )));
    }
    if reason.chars().any(char::is_control) {
        return Err(IssueError::InvalidRequest("the reason contains control characters (newline, tab, NUL…): write it on one line".into()));
    }
    if reason.chars().any(is_invisible) {
        return Err(IssueError::InvalidRequest(
            "the reason contains invisible or direction-changing characters (zero-width, bidi): write it in plain text".into(),
        ));
    }
    Ok(())
}

/// Principals are user or host names as OpenSSH compares them: printable ASCII, no list
/// separators or pattern characters (patterns belong in the policy, not in a certificate).
pub fn check_principal(principal: &str) -> Result<(), IssueError> {
    let bad = principal.chars().find(|&c| !c.is_ascii_graphic() || matches!(c, ',' | '*' | '?' | '!'));
    if principal.is_empty() || principal.len() > MAX_PRINCIPAL_CHARS || bad.is_some() {
        return Err(IssueError::InvalidRequest(format!(
            "principal {:?} is not valid: a principal is 1-{MAX_PRINCIPAL_CHARS} printable ASCII characters without whitespace, ',', '*', '?' or '!'{}",
            truncate_for_message(principal),
            bad.map(|c| format!(" (found {c:?})")).unwrap_or_default()
        )));
    }
    Ok(())
}

/// Names and values of extensions and critical options go into the certificate verbatim.
pub fn check_option(kind: &str, name: &str, value: &str) -> Result<(), IssueError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err(IssueError::InvalidRequest(format!(
            "{kind} name {:?} is not valid: use printable ASCII without whitespace",
            truncate_for_message(name)
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(IssueError::InvalidRequest(format!("the value of {kind} {name:?} contains control characters: remove them")));
    }
    Ok(())
}

/// Access request ids become S3 keys: what the function makes them (a UUID), nothing else.
pub fn check_request_id(id: &str) -> Result<(), IssueError> {
    if id.len() != 36 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-') {
        return Err(IssueError::InvalidRequest(format!(
            "{:?} is no access request id: use the id the pending request was given (a UUID, as `sshca requests` lists it)",
            truncate_for_message(id)
        )));
    }
    Ok(())
}

/// A nonce is up to 64 printable ASCII characters.
pub fn check_nonce(nonce: &str) -> Result<(), IssueError> {
    if nonce.is_empty() || nonce.len() > 64 || !nonce.chars().all(|c| c.is_ascii_graphic()) {
        return Err(IssueError::InvalidRequest("nonce must be 1-64 printable ASCII characters (e.g. a UUID)".into()));
    }
    Ok(())
}

/// Zero-width and bidirectional-control characters: they make an admin's terminal show
/// something other than what a record holds.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}' | '\u{2060}')
}

/// Keeps error messages readable when the offending input is huge.
pub fn truncate_for_message(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

/// The request's own checks, before any policy is read: names that become S3 keys and the reason.
/// The user name may be left out (the caller's identity names it).
pub fn check_syntax(request: &SignRequest) -> Result<(), IssueError> {
    check_environment(&request.environment)?;
    if !request.username.is_empty() {
        check_username(&request.username)?;
    }
    check_reason(&request.reason)?;
    if let Some(nonce) = &request.nonce {
        check_nonce(nonce)?;
    }
    if let Some(id) = &request.access_request {
        check_request_id(id)?;
    }
    if let Some(verdict) = &request.verdict {
        check_request_id(&verdict.request_id)?;
        if verdict.digest.len() != 64 || !verdict.digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(IssueError::InvalidRequest(
                "a verdict's digest is the request's 64 hex digits, as `sshca requests` shows them".into(),
            ));
        }
        if request.public_key.is_some() || request.access_request.is_some() || request.break_glass || request.principals.is_some() {
            return Err(IssueError::InvalidRequest(
                "a verdict certifies no key: send it without a key, principals, claim or break glass".into(),
            ));
        }
    }
    if request.break_glass && request.access_request.is_some() {
        return Err(IssueError::InvalidRequest("break glass needs no approved request: leave out one or the other".into()));
    }
    match &request.requested_by {
        Some(requested_by) => check_requested_by(requested_by),
        None => Ok(()),
    }
}

fn check_requested_by(requested_by: &str) -> Result<(), IssueError> {
    if requested_by.chars().count() > MAX_REASON_CHARS || requested_by.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(IssueError::InvalidRequest(format!(
            "requested_by must be one line of at most {} characters of plain text (no control, zero-width or bidi characters)",
            MAX_REASON_CHARS
        )));
    }
    Ok(())
}

/// Parses an OpenSSH one-line public key, telling apart the usual mistakes.
pub fn parse_public_key(text: &str) -> Result<PublicKey, IssueError> {
    let line = text.trim();
    if line.starts_with("-----BEGIN") {
        return Err(IssueError::InvalidPublicKey(
            "this is a private key, not a public key: pass the .pub file (e.g. ~/.ssh/id_ed25519.pub) and keep the private key secret"
                .into(),
        ));
    }
    if line.contains('\n') || line.contains('\r') {
        return Err(IssueError::InvalidPublicKey(
            "the public key spans several lines: pass exactly one key, the one line of a .pub file".into(),
        ));
    }
    if line.split_whitespace().next().is_some_and(|kind| kind.contains("-cert-v01@openssh.com")) {
        return Err(IssueError::InvalidPublicKey(
            "this is a certificate, not a public key: pass the key's .pub file (e.g. ~/.ssh/id_ed25519.pub)".into(),
        ));
    }
    PublicKey::from_openssh(line).map_err(|err| {
        IssueError::InvalidPublicKey(format!(
            "not an OpenSSH public key ({err}): pass the contents of a .pub file such as ~/.ssh/id_ed25519.pub, e.g. \"ssh-ed25519 AAAA… user@host\""
        ))
    })
}

/// A request is a few KiB at most; anything much larger is refused before it is parsed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Parses a request body, refusing oversized ones first.
pub fn parse_request_bytes(body: &[u8]) -> Result<SignRequest, IssueError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(too_large(body.len()));
    }
    serde_json::from_slice(body).map_err(bad_json)
}

fn too_large(size: usize) -> IssueError {
    IssueError::InvalidRequest(format!(
        "the request is {size} bytes; at most {MAX_REQUEST_BYTES} are accepted: send one public key and a short reason"
    ))
}

fn bad_json(err: serde_json::Error) -> IssueError {
    IssueError::InvalidRequest(format!(
        "the request JSON does not fit the documented shape ({}): see the README's request format",
        without_values(&err.to_string())
    ))
}

/// serde's message without the value it quotes: a field of the wrong type may hold a pasted
/// private key, which must not reach the error, the logs or the caller's terminal.
fn without_values(message: &str) -> String {
    for kind in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(kind) {
            let what = rest.split_whitespace().next().unwrap_or_default();
            let expected = rest.find(", expected").map_or("", |at| &rest[at..]);
            return format!("{kind}{what}{expected}");
        }
    }
    message.to_owned()
}

/// Parses a request that came as JSON already (a direct Lambda invocation), refusing oversized ones.
pub fn parse_request_value(value: serde_json::Value) -> Result<SignRequest, IssueError> {
    let size = serde_json::to_vec(&value).map(|b| b.len()).unwrap_or(0);
    if size > MAX_REQUEST_BYTES {
        return Err(too_large(size));
    }
    serde_json::from_value(value).map_err(bad_json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::{IdentityProof, GET_CALLER_IDENTITY_BODY};

    #[test]
    fn usernames_cannot_escape_their_prefix() {
        for bad in ["", "a/b", "..", "a..b", ".hidden", "a%2Fb", "tab\tx", "nul\0", "é", &"x".repeat(10_000)] {
            assert!(check_username(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["jane", "jane@example.com", "ci-bot_2", "a.b+c"] {
            check_username(good).unwrap();
        }
    }

    #[test]
    fn environment_names_are_plain() {
        for bad in ["", "Prod", "../x", "a/b", "_all", "-x", "a b"] {
            assert!(check_environment(bad).is_err(), "{bad:?} accepted");
        }
        check_environment("staging").unwrap();
        check_environment("prod-eu_1").unwrap();
    }

    #[test]
    fn principals_reject_separators_patterns_and_lookalikes() {
        for bad in ["", "a,b", "a b", "a\nb", "nul\0", "*", "web?", "rооt", &"x".repeat(300)] {
            assert!(check_principal(bad).is_err(), "{bad:?} accepted");
        }
        check_principal("deploy").unwrap();
        check_principal("web1.example.com").unwrap();
    }

    #[test]
    fn reasons_are_required_short_and_one_line() {
        assert!(check_reason("").is_err());
        assert!(check_reason("   ").is_err());
        assert!(check_reason(&"x".repeat(257)).is_err());
        assert!(check_reason("a\nb").is_err());
        check_reason(&"x".repeat(256)).unwrap();
        assert!(check_reason("deploy \u{202E}gnp.exe").unwrap_err().to_string().contains("direction-changing"));
        assert!(check_reason("a\u{200B}b").is_err());
    }

    #[test]
    fn request_json_rejects_unknown_fields() {
        let err = serde_json::from_str::<SignRequest>(r#"{"environment":"e","username":"u","reason":"r","principal":["x"]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `principal`"), "{err}");
    }

    #[test]
    fn the_request_hash_covers_every_field_but_the_proof() {
        let request = SignRequest { environment: "e".into(), username: "u".into(), reason: "r".into(), ..Default::default() };
        let proof =
            IdentityProof { headers: BTreeMap::from([("host".to_owned(), "sts".to_owned())]), body: GET_CALLER_IDENTITY_BODY.into() };
        let with_proof = SignRequest { identity: Some(Proof::Aws(proof)), ..request.clone() };
        assert_eq!(request_hash(&request), request_hash(&with_proof));
        let other_key = SignRequest { public_key: Some("ssh-ed25519 AAAA".into()), ..request.clone() };
        assert_ne!(request_hash(&request), request_hash(&other_key));
        let other_nonce = SignRequest { nonce: Some("n".into()), ..request.clone() };
        assert_ne!(request_hash(&request), request_hash(&other_nonce));
    }
    #[test]
    fn oversized_and_malformed_bodies_are_refused() {
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert!(parse_request_bytes(&huge).unwrap_err().to_string().contains("at most"));
        assert!(parse_request_bytes(b"{not json").unwrap_err().to_string().contains("does not fit"));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_not_echoed() {
        let err = parse_request_bytes(br#"{"environment":"e","ttl":"-----BEGIN OPENSSH PRIVATE KEY----- b3Blbn"}"#).unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("BEGIN") && !message.contains("b3Blbn"), "{message}");
        assert!(message.contains("invalid type: string, expected u64"), "{message}");
    }
}

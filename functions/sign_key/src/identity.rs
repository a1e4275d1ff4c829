//! Proof of identity: a caller's SigV4-signed `sts:GetCallerIdentity` request, the pattern of
//! Vault's AWS IAM auth method and the EKS authenticator.
//!
//! The caller signs, with its own AWS credentials, a GetCallerIdentity request carrying two extra
//! signed headers: [`AUDIENCE_HEADER`] names this deployment (so a proof made for another service
//! cannot be replayed here) and [`REQUEST_HASH_HEADER`] carries [`request_hash`] of the signing
//! request (so a captured proof can sign nothing else). It sends the signed headers, never a URL:
//! the function checks the binding ([`check_binding`]) and sends the request itself to its own STS
//! endpoint ([`crate::sts`]), whose answer names the caller.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::macros::format_description;
use time::PrimitiveDateTime;

use crate::error::IssueError;

pub use sshca_proto::proof::{
    hex, IdentityProof, AUDIENCE_HEADER, GET_CALLER_IDENTITY_BODY, GET_CALLER_IDENTITY_CONTENT_TYPE, MAX_PROOF_AGE_SECONDS,
    REQUEST_HASH_HEADER,
};
pub use sshca_proto::request::request_hash;

/// Who STS says signed the proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenIdentity {
    pub arn: String,
    pub user_id: String,
    pub account: String,
}

/// Sends a checked proof to STS and returns the identity STS answers with.
#[async_trait]
pub trait IdentityVerifier: Send + Sync {
    async fn caller_identity(&self, proof: &SignedProof) -> Result<ProvenIdentity, IssueError>;
}

/// A proof whose binding was checked: the headers to forward, and the host they were signed for.
#[derive(Debug, Clone)]
pub struct SignedProof {
    pub host: String,
    /// The signed headers other than `host`, and `authorization`.
    pub headers: Vec<(String, String)>,
}

fn refused(why: impl std::fmt::Display) -> IssueError {
    IssueError::AccessDenied(format!(
        "the proof of identity is not valid: {why}; make a new one with `get_key request` or `sshca sign` (both sign with your AWS credentials)"
    ))
}

/// Checks everything about `proof` that does not need STS: the body, the signed binding headers,
/// the audience, the request it is bound to, and its age. `now` is Unix seconds; a proof dated
/// up to `clock_skew` seconds ahead is accepted.
pub fn check_binding(
    proof: &IdentityProof,
    audience: &str,
    request_hash: &str,
    now: u64,
    clock_skew: u64,
) -> Result<SignedProof, IssueError> {
    if proof.body != GET_CALLER_IDENTITY_BODY {
        return Err(refused(format!("it must sign exactly {GET_CALLER_IDENTITY_BODY:?}")));
    }
    let mut headers = BTreeMap::new();
    for (name, value) in &proof.headers {
        if headers.insert(name.to_ascii_lowercase(), value.as_str()).is_some() {
            return Err(refused(format!("header {name:?} appears twice")));
        }
    }
    let authorization = headers.get("authorization").ok_or_else(|| refused("it has no authorization header"))?;
    let signed = signed_headers(authorization)?;
    for required in ["host", "x-amz-date", AUDIENCE_HEADER, REQUEST_HASH_HEADER] {
        if !signed.contains(&required) {
            return Err(refused(format!("header {required} is not signed")));
        }
    }
    // Only the headers of a GetCallerIdentity are put on the request the function sends.
    const SIGNABLE: [&str; 7] =
        ["content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token", AUDIENCE_HEADER, REQUEST_HASH_HEADER];
    if let Some(other) = signed.iter().find(|name| !SIGNABLE.contains(name)) {
        return Err(refused(format!(
            "header {:?} may not be signed (only {})",
            crate::request::truncate_for_message(other),
            SIGNABLE.join(", ")
        )));
    }
    if headers.get("content-type").is_some_and(|value| *value != GET_CALLER_IDENTITY_CONTENT_TYPE) {
        return Err(refused(format!("its content-type must be {GET_CALLER_IDENTITY_CONTENT_TYPE:?}")));
    }
    if headers.contains_key("x-amz-security-token") && !signed.contains(&"x-amz-security-token") {
        return Err(refused("the session token is not signed"));
    }
    let mut forwarded = Vec::new();
    for name in &signed {
        let value = headers.get(*name).ok_or_else(|| refused(format!("signed header {name} is missing")))?;
        if *name != "host" {
            forwarded.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    forwarded.push(("authorization".to_owned(), (*authorization).to_owned()));
    if headers[AUDIENCE_HEADER] != audience {
        return Err(refused(format!(
            "it was made for audience {:?}, and this environment's is {audience:?}: ask with --audience {audience:?}",
            crate::request::truncate_for_message(headers[AUDIENCE_HEADER])
        )));
    }
    if headers[REQUEST_HASH_HEADER] != request_hash {
        return Err(refused("it is bound to another request (the request was changed after it was signed)"));
    }
    let signed_at = amz_date(headers["x-amz-date"])?;
    if signed_at + MAX_PROOF_AGE_SECONDS < now {
        return Err(refused(format!("it was signed {}s ago; proofs last {MAX_PROOF_AGE_SECONDS}s", now - signed_at)));
    }
    if signed_at > now + clock_skew {
        return Err(refused(format!(
            "it is dated {}s in the future (more than the {clock_skew}s clock-skew allowance): check this machine's clock",
            signed_at - now
        )));
    }
    Ok(SignedProof { host: headers["host"].to_owned(), headers: forwarded })
}

/// The `SignedHeaders` of a SigV4 `Authorization` header, for the STS service.
fn signed_headers(authorization: &str) -> Result<Vec<&str>, IssueError> {
    let fields =
        authorization.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| refused("its authorization is not AWS4-HMAC-SHA256 (SigV4)"))?;
    // A field named twice is refused, not read once: STS might read the other one, and then the
    // headers checked here would not be the headers it verifies.
    let field = |name: &str| {
        let mut values =
            fields.split(',').map(str::trim).filter_map(|part| part.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')));
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            (None, _) => Err(refused(format!("its authorization has no {name}"))),
            (Some(_), Some(_)) => Err(refused(format!("its authorization names {name} more than once"))),
        }
    };
    let scope: Vec<&str> = field("Credential")?.split('/').collect();
    if scope.len() != 5 || scope[3] != "sts" || scope[4] != "aws4_request" {
        return Err(refused("it is not signed for the STS service"));
    }
    field("Signature")?;
    Ok(field("SignedHeaders")?.split(';').collect())
}

fn amz_date(text: &str) -> Result<u64, IssueError> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = PrimitiveDateTime::parse(text, format).map_err(|_| refused(format!("x-amz-date {text:?} is not a date")))?;
    u64::try_from(at.assume_utc().unix_timestamp()).map_err(|_| refused("x-amz-date is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIENCE: &str = "sshca:bucket:staging";
    const NOW: u64 = 1_800_000_000;

    fn date(unix: u64) -> String {
        let at = time::OffsetDateTime::from_unix_timestamp(unix as i64).unwrap();
        at.format(format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap()
    }

    fn proof(signed: &str, at: u64) -> IdentityProof {
        let mut headers = BTreeMap::new();
        headers.insert(
            "Authorization".into(),
            format!("AWS4-HMAC-SHA256 Credential=AKID/20270115/us-east-1/sts/aws4_request, SignedHeaders={signed}, Signature=abc"),
        );
        headers.insert("host".into(), "sts.us-east-1.amazonaws.com".into());
        headers.insert("x-amz-date".into(), date(at));
        headers.insert(AUDIENCE_HEADER.into(), AUDIENCE.into());
        headers.insert(REQUEST_HASH_HEADER.into(), "h".into());
        headers.insert("content-type".into(), GET_CALLER_IDENTITY_CONTENT_TYPE.into());
        IdentityProof { headers, body: GET_CALLER_IDENTITY_BODY.into() }
    }

    const ALL: &str = "content-type;host;x-amz-date;x-sshca-audience;x-sshca-request-hash";

    #[test]
    fn a_bound_fresh_proof_passes_and_forwards_its_signed_headers() {
        let checked = check_binding(&proof(ALL, NOW - 10), AUDIENCE, "h", NOW, 60).unwrap();
        assert_eq!(checked.host, "sts.us-east-1.amazonaws.com");
        let names: Vec<&str> = checked.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "x-amz-date", AUDIENCE_HEADER, REQUEST_HASH_HEADER, "authorization"]);
    }

    #[test]
    fn binding_failures_are_named() {
        let cases: Vec<(IdentityProof, &str, &str)> = vec![
            (proof("content-type;host;x-amz-date;x-sshca-request-hash", NOW), AUDIENCE, "x-sshca-audience is not signed"),
            (proof("content-type;host;x-amz-date;x-sshca-audience", NOW), AUDIENCE, "x-sshca-request-hash is not signed"),
            (proof(ALL, NOW), "sshca:other:staging", "made for audience"),
            (proof(ALL, NOW - 301), AUDIENCE, "signed 301s ago"),
            (proof(ALL, NOW + 61), AUDIENCE, "in the future"),
            (IdentityProof { body: "Action=AssumeRole".into(), ..proof(ALL, NOW) }, AUDIENCE, "exactly"),
            (proof(&format!("{ALL};x-extra"), NOW), AUDIENCE, "\"x-extra\" may not be signed"),
        ];
        for (case, audience, expected) in cases {
            let err = check_binding(&case, audience, "h", NOW, 60).unwrap_err();
            assert_eq!(err.error_type(), "AccessDenied");
            assert!(err.to_string().contains(expected), "{expected:?} not in {err}");
        }
        let err = check_binding(&proof(ALL, NOW), AUDIENCE, "other", NOW, 60).unwrap_err();
        assert!(err.to_string().contains("bound to another request"), "{err}");
        let mut unsigned_token = proof(ALL, NOW);
        unsigned_token.headers.insert("x-amz-security-token".into(), "t".into());
        assert!(check_binding(&unsigned_token, AUDIENCE, "h", NOW, 60).unwrap_err().to_string().contains("session token"));
        let mut not_sts = proof(ALL, NOW);
        let auth = not_sts.headers["Authorization"].replace("/sts/", "/s3/");
        not_sts.headers.insert("Authorization".into(), auth);
        assert!(check_binding(&not_sts, AUDIENCE, "h", NOW, 60).unwrap_err().to_string().contains("STS"));
    }

    #[test]
    fn an_authorization_naming_a_field_twice_is_refused() {
        for (name, again) in [
            ("SignedHeaders", "SignedHeaders=host;x-amz-date"),
            ("Credential", "Credential=AKID/20270115/us-east-1/sts/aws4_request"),
            ("Signature", "Signature=def"),
        ] {
            let mut twice = proof(ALL, NOW);
            let auth = format!("{}, {again}", twice.headers["Authorization"]);
            twice.headers.insert("Authorization".into(), auth);
            let err = check_binding(&twice, AUDIENCE, "h", NOW, 60).unwrap_err();
            assert_eq!(err.error_type(), "AccessDenied");
            assert!(err.to_string().contains(&format!("names {name} more than once")), "{err}");
        }
    }
}

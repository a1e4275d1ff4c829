//! Making a proof of identity: the caller's credentials (from the standard chain: SSO profiles,
//! instance roles, environment) sign, with `aws-sigv4`, the GetCallerIdentity request that
//! `sign_key` will send to STS, with the two binding headers among the signed ones.

use std::time::SystemTime;

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use sshca_proto::proof::{
    IdentityProof, Proof, AUDIENCE_HEADER, GET_CALLER_IDENTITY_BODY, GET_CALLER_IDENTITY_CONTENT_TYPE, REQUEST_HASH_HEADER,
};
use sshca_proto::request::{request_hash, SignRequest};

use crate::explain;

/// The caller's credentials from the standard chain, or one line naming the fix.
pub async fn credentials(config: &SdkConfig) -> Result<Credentials> {
    config.region().ok_or_else(explain::no_region)?;
    let provider = config.credentials_provider().ok_or_else(explain::no_credentials)?;
    provider.provide_credentials().await.map_err(explain::credentials)
}

/// Signs a proof for `request` (which gets a fresh nonce) and puts it in the request.
pub async fn prove(config: &SdkConfig, audience: &str, request: &mut SignRequest) -> Result<()> {
    prove_with(config, credentials(config).await?, audience, request)
}

/// [`prove`] with credentials already loaded from `config`'s chain.
pub fn prove_with(config: &SdkConfig, credentials: Credentials, audience: &str, request: &mut SignRequest) -> Result<()> {
    let region = config.region().ok_or_else(explain::no_region)?.to_string();
    let endpoint = sts_endpoint(&region);
    request.identity = None;
    request.nonce = Some(uuid::Uuid::new_v4().to_string());
    let hash = request_hash(request);
    let headers = [("content-type", GET_CALLER_IDENTITY_CONTENT_TYPE), (AUDIENCE_HEADER, audience), (REQUEST_HASH_HEADER, hash.as_str())];
    let identity: Identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .context("signing the proof of identity")?
        .into();
    let signable =
        SignableRequest::new("POST", endpoint.as_str(), headers.iter().copied(), SignableBody::Bytes(GET_CALLER_IDENTITY_BODY.as_bytes()))
            .with_context(|| format!("the STS endpoint {endpoint:?} is not a URL: fix AWS_ENDPOINT_URL_STS"))?;
    let (instructions, _) = sign(signable, &params).context("signing the proof of identity")?.into_parts();
    let mut signed: std::collections::BTreeMap<String, String> =
        headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    signed.insert("host".into(), host_of(&endpoint)?);
    for header in instructions.headers() {
        signed.insert(header.0.to_ascii_lowercase(), header.1.to_owned());
    }
    request.identity = Some(Proof::Aws(IdentityProof { headers: signed, body: GET_CALLER_IDENTITY_BODY.to_owned() }));
    Ok(())
}

/// Where `sign_key` sends proofs: its region's STS endpoint, or `AWS_ENDPOINT_URL_STS` /
/// `AWS_ENDPOINT_URL` (local servers), the same variables the function reads.
fn sts_endpoint(region: &str) -> String {
    ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"))
        .trim_end_matches('/')
        .to_owned()
        + "/"
}

/// The `host` header SigV4 signs for `endpoint`: the authority without a default port.
fn host_of(endpoint: &str) -> Result<String> {
    let (scheme, rest) = endpoint.split_once("://").context("the STS endpoint has no scheme")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match (scheme, authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host,
        _ => authority,
    };
    Ok(host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_drop_default_ports_only() {
        assert_eq!(host_of("https://sts.eu-west-1.amazonaws.com/").unwrap(), "sts.eu-west-1.amazonaws.com");
        assert_eq!(host_of("http://127.0.0.1:4566/").unwrap(), "127.0.0.1:4566");
        assert_eq!(host_of("https://sts.example:443/").unwrap(), "sts.example");
    }
}

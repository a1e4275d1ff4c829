//! Sends a caller's checked proof to STS. The request is the SDK's own `GetCallerIdentity`,
//! addressed to this function's STS endpoint (its region's, or `AWS_ENDPOINT_URL_STS`): only the
//! caller's signed headers are put on it before it is sent, never a URL or body of the caller's.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_sts::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_sts::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use crate::error::IssueError;
use crate::identity::{IdentityVerifier, ProvenIdentity, SignedProof};

pub struct StsVerifier {
    client: aws_sdk_sts::Client,
}

impl StsVerifier {
    pub fn new(client: aws_sdk_sts::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl IdentityVerifier for StsVerifier {
    async fn caller_identity(&self, proof: &SignedProof) -> Result<ProvenIdentity, IssueError> {
        let wrong_host = Arc::new(Mutex::new(None));
        let forward = ForwardProof { proof: proof.clone(), wrong_host: wrong_host.clone() };
        let answer = self.client.get_caller_identity().customize().interceptor(forward).send().await;
        if let Some(message) = wrong_host.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            return Err(IssueError::AccessDenied(message));
        }
        let output = answer.map_err(|err| match &err {
            SdkError::ServiceError(service) => {
                // An answer the SDK could not parse (an STS-compatible server's own error shape)
                // still names its code in the body.
                let body = String::from_utf8_lossy(service.raw().body().bytes().unwrap_or_default());
                let in_body = body.split_once("<Code>").and_then(|(_, rest)| rest.split_once("</Code>")).map(|(code, _)| crate::request::truncate_for_message(code));
                IssueError::AccessDenied(format!(
                    "STS refused the proof of identity ({}: {}): sign it again with valid AWS credentials (`aws sso login`, or check AWS_PROFILE)",
                    service.err().code().map(str::to_owned).or(in_body).unwrap_or_else(|| format!("HTTP {}", service.raw().status().as_u16())),
                    service.err().message().unwrap_or("no message"),
                ))
            }
            _ => IssueError::Unavailable(format!(
                "STS could not be asked who signed the proof: {}",
                aws_sdk_sts::error::DisplayErrorContext(&err)
            )),
        })?;
        match (output.arn(), output.user_id(), output.account()) {
            (Some(arn), Some(user_id), Some(account)) => {
                Ok(ProvenIdentity { arn: arn.to_owned(), user_id: user_id.to_owned(), account: account.to_owned() })
            }
            _ => Err(IssueError::Unavailable("STS answered without an ARN, user id or account".into())),
        }
    }
}

/// Replaces the SDK's own signature with the caller's signed headers, on every attempt.
#[derive(Debug)]
struct ForwardProof {
    proof: SignedProof,
    wrong_host: Arc<Mutex<Option<String>>>,
}

impl Intercept for ForwardProof {
    fn name(&self) -> &'static str {
        "sshca::ForwardProof"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        let uri: http::Uri = request.uri().parse()?;
        let ours = match (uri.host(), uri.port_u16(), uri.scheme_str()) {
            (Some(host), Some(port), Some(scheme)) if !matches!((scheme, port), ("https", 443) | ("http", 80)) => format!("{host}:{port}"),
            (Some(host), _, _) => host.to_owned(),
            (None, _, _) => return Err("the STS endpoint has no host".into()),
        };
        if !ours.eq_ignore_ascii_case(&self.proof.host) {
            let message = format!(
                "the proof of identity was signed for STS at {:?}, and this deployment verifies it at {ours:?}: sign it for the function's region (AWS_REGION)",
                crate::request::truncate_for_message(&self.proof.host)
            );
            *self.wrong_host.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(message.clone());
            return Err(message.into());
        }
        let headers = request.headers_mut();
        for own in ["authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"] {
            headers.remove(own);
        }
        for (name, value) in &self.proof.headers {
            headers.try_insert(name.clone(), value.clone())?;
        }
        Ok(())
    }
}

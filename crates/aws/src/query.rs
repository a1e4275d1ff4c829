//! AWS Query API calls made by hand: a form-encoded POST signed with `aws-sigv4`, sent with
//! `ureq`, its XML answer handed back as text. For the two services sshca makes one call each
//! of, EC2 (`DescribeInstances`, [`crate::ec2`]) and SNS (`Publish`, [`crate::sns`]). Why not
//! their SDKs: `aws-sdk-ec2` alone took at least 12.8 CPU-minutes of a cold debug build on a
//! 2-core machine (read off `ps` while it was still compiling; with it CI took 1927 s, past its
//! budget) and megabytes of the function's binary, which every cold start loads; one signed POST
//! does it.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity as SigningIdentity;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The service answered with an error (its `<Code>` and `<Message>`).
    #[error("{service} answered HTTP {status} {code}: {message}")]
    Service { service: &'static str, status: u16, code: String, message: String },
    #[error("{0}")]
    Failed(String),
}

/// One service of one account and region, as `config`'s credentials.
#[derive(Clone)]
pub struct Query {
    config: SdkConfig,
    /// The signing name and the endpoint's first label (`ec2`, `sns`).
    service: &'static str,
    /// The standard variable that points it elsewhere (`AWS_ENDPOINT_URL_EC2`).
    endpoint_variable: &'static str,
    version: &'static str,
    /// Built once per client (its TLS configuration and connection pool), not per call.
    agent: ureq::Agent,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into()
}

/// What the form encoding leaves as is (RFC 3986 unreserved characters).
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

impl Query {
    pub fn new(config: SdkConfig, service: &'static str, endpoint_variable: &'static str, version: &'static str) -> Self {
        Self { config, service, endpoint_variable, version, agent: agent(Duration::from_secs(10)) }
    }

    /// This service, each call given at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.agent = agent(timeout);
        self
    }

    /// The service-specific variable, else `AWS_ENDPOINT_URL` (as the SDKs read them), else the region's.
    fn endpoint(&self, region: &str) -> String {
        let configured = std::env::var(self.endpoint_variable)
            .ok()
            .filter(|value| !value.is_empty())
            .or_else(|| self.config.endpoint_url().map(str::to_owned));
        let endpoint = configured.unwrap_or_else(|| format!("https://{}.{region}.amazonaws.com", self.service));
        format!("{}/", endpoint.trim_end_matches('/'))
    }

    /// Calls `action` with `params`; the answer's XML.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String, QueryError> {
        let failed = |what: &str, err: &dyn std::fmt::Display| QueryError::Failed(format!("{what}: {err}"));
        let service = self.service;
        let region = self.config.region().ok_or_else(|| QueryError::Failed("no AWS region is configured".into()))?.to_string();
        let provider = self.config.credentials_provider().ok_or_else(|| QueryError::Failed("no AWS credentials are configured".into()))?;
        let credentials = provider.provide_credentials().await.map_err(|err| failed(&format!("no credentials for {service}"), &err))?;
        let endpoint = self.endpoint(&region);
        let mut body = format!("Action={action}&Version={}", self.version);
        for (name, value) in params {
            body.push_str(&format!("&{name}={}", utf8_percent_encode(value, FORM)));
        }
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let identity: SigningIdentity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|err| failed("signing the request", &err))?
            .into();
        let headers = [("content-type", content_type)];
        let signable = SignableRequest::new("POST", endpoint.as_str(), headers.iter().copied(), SignableBody::Bytes(body.as_bytes()))
            .map_err(|err| failed(&format!("the {service} endpoint {endpoint:?} ({})", self.endpoint_variable), &err))?;
        let (instructions, _) = sign(signable, &params).map_err(|err| failed("signing the request", &err))?.into_parts();
        let signed: Vec<(String, String)> = instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        // ureq blocks: off the async workers (these calls are rare: a host's renewal, a notice)
        let agent = self.agent.clone();
        let (status, text) = tokio::task::spawn_blocking(move || {
            let mut request = agent.post(&endpoint).header("content-type", content_type);
            for (name, value) in &signed {
                request = request.header(name, value);
            }
            let mut response =
                request.send(body.as_bytes()).map_err(|err| format!("{service} at {endpoint} could not be reached: {err}"))?;
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().map_err(|err| format!("{service}'s answer could not be read: {err}"))?;
            Ok::<_, String>((status, text))
        })
        .await
        .map_err(|err| failed("the request", &err))?
        .map_err(QueryError::Failed)?;
        if status == 200 {
            return Ok(text);
        }
        let element = |name: &str| {
            let (_, rest) = text.split_once(&format!("<{name}>"))?;
            Some(rest.split_once(&format!("</{name}>"))?.0.to_owned())
        };
        Err(QueryError::Service {
            service,
            status,
            code: element("Code").unwrap_or_default(),
            message: element("Message").unwrap_or_default(),
        })
    }
}

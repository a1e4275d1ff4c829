//! Invoking the deployed `sign_key` function through the Lambda Invoke API.

use anyhow::{anyhow, Context, Result};
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use sshca_proto::approval::PendingAnswer;
use sshca_proto::request::Answer;
use sshca_proto::request::{SignRequest, SignResponse};

/// A function error as Lambda reports it (and as cargo-lambda's emulator does, with HTTP 500).
type FunctionError = sshca_proto::error::ErrorBody;

pub struct Lambda {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl Lambda {
    pub fn new(config: &aws_config::SdkConfig, function: &str) -> Self {
        // A retried Invoke re-runs the handler, which would take a second serial: one attempt only.
        let lambda_config = aws_sdk_lambda::config::Builder::from(config).retry_config(aws_config::retry::RetryConfig::disabled()).build();
        Self { client: aws_sdk_lambda::Client::from_conf(lambda_config), function: function.to_owned() }
    }

    /// Asks for a certificate; a request that waits for approval is an error naming the command
    /// that approves it.
    pub async fn sign(&self, request: &SignRequest) -> Result<SignResponse> {
        expect_certificate(self.ask(request).await?)
    }

    /// Whatever the function answers: a certificate, a request waiting for approval, or a recorded verdict.
    pub async fn ask(&self, request: &SignRequest) -> Result<Answer> {
        let payload = serde_json::to_vec(request)?;
        let result = self.client.invoke().function_name(&self.function).payload(Blob::new(payload)).send().await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                // cargo-lambda's emulator answers a handler error with HTTP 500 and the error as body.
                let body = err.raw_response().and_then(|r| r.body().bytes()).unwrap_or_default();
                if let Ok(error) = serde_json::from_slice::<FunctionError>(body) {
                    return Err(function_error(error));
                }
                return Err(invoke_failure(&self.function, &err));
            }
        };
        let payload = output.payload().map(|p| p.as_ref()).unwrap_or_default();
        if output.function_error().is_some() {
            let error: FunctionError = serde_json::from_slice(payload)
                .with_context(|| format!("{:?} failed: {}", self.function, String::from_utf8_lossy(payload)))?;
            return Err(function_error(error));
        }
        serde_json::from_slice(payload).with_context(|| format!("{:?} answered something that is not a signing response", self.function))
    }
}

/// The certificate of `answer`, or what stands in its way.
pub fn expect_certificate(answer: Answer) -> Result<SignResponse> {
    match answer {
        Answer::Issued(response) => Ok(response),
        Answer::Pending(PendingAnswer { pending }) => Err(anyhow!(
            "this access needs approval: access request {} waits for {} approval(s) by {} until {}; an approver runs `{}`",
            pending.request_id,
            pending.count,
            pending.approvers.join(", "),
            pending.expires_at,
            pending.approve_command
        )),
        Answer::Recorded(_) => Err(anyhow!("the function recorded a verdict instead of signing: the request carried one")),
    }
}

fn function_error(error: FunctionError) -> anyhow::Error {
    match error.error_type.as_str() {
        // lambda_runtime's own errors (bad payload shape, panics) carry a Rust type name
        t if t.contains("::") => anyhow!("the function failed: {}", error.error_message),
        t => anyhow!("{t}: {}", error.error_message),
    }
}

/// One line for an Invoke that did not reach the function.
fn invoke_failure<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    function: &str,
    err: &SdkError<E, R>,
) -> anyhow::Error {
    let resource = format!("function {function:?}");
    match err {
        SdkError::ServiceError(service) => {
            crate::explain::call("Lambda", service.err().code(), service.err().message(), "lambda:InvokeFunction", &resource)
        }
        other => {
            let chain = aws_sdk_lambda::error::DisplayErrorContext(other).to_string();
            let lower = chain.to_ascii_lowercase();
            if lower.contains("credentials") || lower.contains("failedtoloadtoken") || lower.contains("identity") {
                crate::explain::no_credentials()
            } else {
                let first = chain.lines().next().unwrap_or_default().to_owned();
                crate::explain::call("Lambda", None, Some(&first), "lambda:InvokeFunction", &resource)
            }
        }
    }
}

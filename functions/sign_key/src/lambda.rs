//! The Lambda face of the issuer: event in, response or a function error with a stable
//! `errorType` out. `main.rs` only wires this to `lambda_runtime`.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::error::IssueError;
use crate::issuer::{Caller, Issuer};
use crate::request::{SignRequest, SignResponse};

impl From<IssueError> for Diagnostic {
    fn from(err: IssueError) -> Self {
        Diagnostic { error_type: err.error_type().to_owned(), error_message: err.to_string() }
    }
}

/// Handles one invocation whose payload is the request JSON.
pub async fn handle(issuer: &Issuer, event: LambdaEvent<Value>) -> Result<SignResponse, Diagnostic> {
    let caller = Caller { request_id: event.context.request_id.clone(), identity: None };
    let request: SignRequest = serde_json::from_value(event.payload)
        .map_err(|err| IssueError::InvalidRequest(format!("the request JSON does not fit the documented shape: {err}")))?;
    Ok(issuer.issue(&request, &caller).await?)
}

/// JSON logs on stderr, as CloudWatch expects them; `RUST_LOG` overrides the level.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
}

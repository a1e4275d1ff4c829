//! The Lambda face of the issuer. `main.rs` only wires [`handle`] to `lambda_runtime`.
//!
//! Two event shapes are accepted: the request JSON itself (the Invoke API, as `sshca sign`
//! sends it), and a Lambda Function URL / API Gateway HTTP API (v2) event whose body is the
//! request JSON, answered with an HTTP response; for the former a refused request is a function
//! error with a stable `errorType`. Either way the caller is who the request's proof of identity
//! proves: nothing else in the event names the caller.

use base64::Engine;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{json, Value};
use tracing::{info, Instrument, Level};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use sshca_core::error::IssueError;
use sshca_core::issuer::{Caller, Issuer};
use sshca_core::request::{parse_request_bytes, parse_request_value, SignRequest};
use sshca_proto::approval::{PendingAnswer, RecordedAnswer};
use sshca_proto::request::Answer;

/// Serials a container leases at a time. A container lives for many requests, so one counter write
/// serves 64 certificates; a container that ends early leaves at most 63 unused serials, which its
/// lease record accounts for.
pub const SERIAL_BLOCK: u64 = 64;

/// Names this container in serial lease records: its log stream (where its logs are), made unique.
pub fn container_name() -> String {
    let stream = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| "local".into());
    format!("{stream}#{}", uuid::Uuid::new_v4())
}

/// A refusal as a Lambda function error: the same `errorType` and message as the HTTP body.
fn diagnostic(err: IssueError) -> Diagnostic {
    let body = sshca_proto::error::ErrorBody::from(&err);
    Diagnostic { error_type: body.error_type, error_message: body.error_message }
}

/// Handles one invocation.
pub async fn handle(issuer: &Issuer, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let request_id = event.context.request_id.clone();
    let span = tracing::info_span!("sign_key", request_id = %request_id);
    async move {
        match http_body(&event.payload) {
            Some(body) => {
                // Whatever `requestContext` says about the caller is not trusted: a direct invoke can
                // write it. The caller is who its proof of identity proves.
                let caller = Caller { request_id };
                let outcome = match body {
                    Ok(body) => sign(issuer, parse_request_bytes(&body), &caller).await,
                    Err(err) => Err(err),
                };
                Ok(http_response(outcome))
            }
            None => {
                let caller = Caller { request_id };
                sign(issuer, parse_request_value(event.payload), &caller).await.map_err(diagnostic)
            }
        }
    }
    .instrument(span)
    .await
}

async fn sign(issuer: &Issuer, request: Result<SignRequest, IssueError>, caller: &Caller) -> Result<Value, IssueError> {
    let environment = request.as_ref().map(|r| r.environment.clone()).unwrap_or_default();
    let outcome = match request {
        Ok(request) => issuer.answer(&request, caller).await,
        Err(err) => Err(err),
    };
    match &outcome {
        Ok(Answer::Issued(response)) => {
            emit_metric(&environment, "issued");
            info!(serial = response.serial, key_id = %response.key_id, outcome = "issued", "request done");
        }
        Ok(Answer::Pending(PendingAnswer { pending })) => {
            emit_metric(&environment, "pending");
            info!(request = %pending.request_id, outcome = "pending", "request done");
        }
        Ok(Answer::Recorded(RecordedAnswer { recorded })) => {
            emit_metric(&environment, "verdict");
            info!(request = %recorded.request_id, approve = recorded.approve, outcome = "verdict", "request done");
        }
        Err(err) => {
            emit_metric(&environment, err.error_type());
            info!(outcome = err.error_type(), error = %err, "request refused");
        }
    }
    outcome.map(|response| serde_json::to_value(response).expect("a response serializes"))
}

/// The body of a Function URL / HTTP API event, or `None` for a direct invocation.
fn http_body(payload: &Value) -> Option<Result<Vec<u8>, IssueError>> {
    let context = payload.get("requestContext")?;
    context.get("http")?;
    let body = payload.get("body").and_then(Value::as_str).unwrap_or_default();
    let bytes = if payload.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        match base64::engine::general_purpose::STANDARD.decode(body) {
            Ok(bytes) => bytes,
            Err(err) => return Some(Err(IssueError::InvalidRequest(format!("the body is not valid base64: {err}")))),
        }
    } else {
        body.as_bytes().to_vec()
    };
    Some(Ok(bytes))
}

fn http_response(outcome: Result<Value, IssueError>) -> Value {
    let (status, body) = match outcome {
        Ok(response) => (200, response),
        Err(err) => {
            let status = match err {
                IssueError::InvalidRequest(_) | IssueError::InvalidPublicKey(_) | IssueError::NoCachedKey { .. } => 400,
                IssueError::PolicyViolation(_) | IssueError::AccessDenied(_) => 403,
                IssueError::UnknownEnvironment(_) => 404,
                IssueError::Configuration(_) => 500,
                IssueError::Unavailable(_) => 503,
            };
            (status, serde_json::to_value(sshca_proto::error::ErrorBody::from(&err)).expect("an error body serializes"))
        }
    };
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
    })
}

/// One CloudWatch Embedded Metric Format line per request: certificates issued, or failures by
/// reason, per environment.
fn emit_metric(environment: &str, outcome: &str) {
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
    let (metric, dimension) = match outcome {
        "issued" => ("CertificatesIssued", "Outcome"),
        "pending" | "verdict" => ("AccessRequests", "Outcome"),
        _ => ("Failures", "Reason"),
    };
    let line = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": "sshca",
                "Dimensions": [["Environment", dimension]],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        "Environment": environment,
        dimension: outcome,
        metric: 1,
    });
    println!("{line}");
}

/// JSON logs on stderr, as CloudWatch expects them; `RUST_LOG` overrides the level.
pub fn init_logging() {
    // `Targets` ("info", "sign_key=debug,warn") rather than `EnvFilter`, whose regex engine would
    // add a megabyte to the binary for filters nobody writes here.
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .ok()
        .filter(|level| !level.is_empty())
        .and_then(|level| level.to_lowercase().parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO));
    tracing_subscriber::fmt()
        .json()
        .with_max_level(Level::TRACE)
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_events_are_recognised_and_decoded() {
        let event = json!({
            "requestContext": {"http": {"method": "POST"}, "authorizer": {"iam": {"userArn": "arn:aws:iam::1:user/alice"}}},
            "body": base64::engine::general_purpose::STANDARD.encode(br#"{"environment":"e"}"#),
            "isBase64Encoded": true,
        });
        assert_eq!(http_body(&event).unwrap().unwrap(), br#"{"environment":"e"}"#);
        assert!(http_body(&json!({"environment": "e", "username": "u"})).is_none());
    }

    #[test]
    fn http_errors_carry_the_error_type() {
        let response = http_response(Err(IssueError::PolicyViolation("no".into())));
        assert_eq!(response["statusCode"], 403);
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["errorType"], "PolicyViolation");
    }
}

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

use crate::error::IssueError;
use crate::issuer::{Caller, Issuer};
use crate::request::SignRequest;

/// A request is a few KiB at most; anything much larger is refused before it is parsed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

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
                let size = serde_json::to_vec(&event.payload).map(|b| b.len()).unwrap_or(0);
                let request = if size > MAX_REQUEST_BYTES {
                    Err(too_large(size))
                } else {
                    serde_json::from_value::<SignRequest>(event.payload).map_err(bad_json)
                };
                sign(issuer, request, &caller).await.map_err(diagnostic)
            }
        }
    }
    .instrument(span)
    .await
}

async fn sign(issuer: &Issuer, request: Result<SignRequest, IssueError>, caller: &Caller) -> Result<Value, IssueError> {
    let environment = request.as_ref().map(|r| r.environment.clone()).unwrap_or_default();
    let outcome = match request {
        Ok(request) => issuer.issue(&request, caller).await,
        Err(err) => Err(err),
    };
    match &outcome {
        Ok(response) => {
            emit_metric(&environment, "issued");
            info!(serial = response.serial, key_id = %response.key_id, outcome = "issued", "request done");
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
    let (metric, dimension) = if outcome == "issued" { ("CertificatesIssued", "Outcome") } else { ("Failures", "Reason") };
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

    #[test]
    fn http_errors_carry_the_error_type() {
        let response = http_response(Err(IssueError::PolicyViolation("no".into())));
        assert_eq!(response["statusCode"], 403);
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["errorType"], "PolicyViolation");
    }
}

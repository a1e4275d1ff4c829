//! Fetching a small document over HTTP(S): bounded in time and size, no redirects (a presigned
//! link is for one object; a redirect elsewhere is refused), S3's error answers made readable.

use std::time::Duration;

use thiserror::Error;

/// Certificates and public keys are a few KiB; anything much larger is not what was asked for.
pub const MAX_BYTES: u64 = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Error)]
pub enum DownloadError {
    #[error("this link has expired{}; ask your admin for a new one", .expired_at.as_deref().map(|t| format!(" (at {t})")).unwrap_or_default())]
    Expired { expired_at: Option<String> },
    #[error("the server refused the link's signature: it was changed or damaged on the way (copy it whole, in single quotes); if it still fails, ask your admin for a new one")]
    BadSignature,
    #[error("the server refused the link ({0}): ask your admin for a new one")]
    Forbidden(String),
    #[error("nothing is stored at this link (HTTP 404): ask your admin for a new one")]
    NotFound,
    #[error("the link redirects elsewhere (HTTP {status}{}): refusing to follow it", .location.as_deref().map(|l| format!(" to {l}")).unwrap_or_default())]
    Redirect { status: u16, location: Option<String> },
    #[error("the server answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("the answer is larger than {MAX_BYTES} bytes, so it is no certificate or key: check the link")]
    TooLarge,
    #[error("{url} is not an http:// or https:// link")]
    NotALink { url: String },
    #[error("{url} is plain http:// to another machine: anyone on the way could read or swap what it serves; use the https:// link (plain http is for a server on this machine)")]
    Unencrypted { url: String },
    #[error("could not reach the server: {0}; check your network (and proxy), then try again")]
    Network(String),
}

/// GETs `url`, returning the body of a 200 answer.
pub fn fetch(url: &str) -> Result<Vec<u8>, DownloadError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(DownloadError::NotALink { url: url.chars().take(80).collect() });
    }
    if url.starts_with("http://") && !is_loopback(url) {
        return Err(DownloadError::Unencrypted { url: url.chars().take(80).collect() });
    }
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).max_redirects(0).http_status_as_error(false).build().into();
    let mut response = agent.get(url).call().map_err(|err| match err {
        ureq::Error::BodyExceedsLimit(_) => DownloadError::TooLarge,
        other => DownloadError::Network(other.to_string()),
    })?;
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.body_mut().with_config().limit(MAX_BYTES).read_to_vec().map_err(|err| match err {
        ureq::Error::BodyExceedsLimit(_) => DownloadError::TooLarge,
        other => DownloadError::Network(other.to_string()),
    })?;
    match status {
        200 => Ok(body),
        300..=399 => Err(DownloadError::Redirect { status, location }),
        _ => Err(explain(status, &String::from_utf8_lossy(&body), url)),
    }
}

/// Turns S3's XML error document into an error that says what to do.
fn explain(status: u16, body: &str, url: &str) -> DownloadError {
    let code = xml_field(body, "Code").unwrap_or_default();
    let message = xml_field(body, "Message").unwrap_or_default();
    let expired = message.to_ascii_lowercase().contains("expired") || code == "ExpiredToken";
    match (status, code.as_str()) {
        (403, _) if expired => DownloadError::Expired { expired_at: xml_field(body, "Expires").or_else(|| expiry_from_url(url)) },
        (403, "SignatureDoesNotMatch") => DownloadError::BadSignature,
        (403, _) => {
            // Some servers answer an expired link with a bare 403: the URL itself says when it expired.
            match expiry_from_url(url) {
                Some(at) if is_past(&at) => DownloadError::Expired { expired_at: Some(at) },
                _ => DownloadError::Forbidden(if code.is_empty() { "HTTP 403".into() } else { format!("{code}: {message}") }),
            }
        }
        (404, _) => DownloadError::NotFound,
        _ => DownloadError::Http {
            status,
            message: if code.is_empty() { body.chars().take(200).collect() } else { format!("{code}: {message}") },
        },
    }
}

fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim().to_owned())
}

/// Whether an http:// URL names this machine (a local server: nothing crosses a network).
fn is_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    // The authority ends at the path, the query or the fragment, whichever comes first.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // A presigned link never carries userinfo, and `localhost:80@evil` connects to `evil`: any '@'
    // is refused rather than parsed.
    if authority.contains('@') {
        return false;
    }
    let (loopback, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, port)) => (host.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()), port),
            None => return false,
        },
        None => {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            (host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()), port)
        }
    };
    // Nothing may follow the host but a port: what else is there, another parser may read otherwise.
    loopback && (port.is_empty() || port.strip_prefix(':').is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit())))
}

/// `X-Amz-Date` + `X-Amz-Expires` of a SigV4 presigned URL, as an RFC 3339 time.
fn expiry_from_url(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let param = |name: &str| query.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_owned()));
    let signed_at = time::PrimitiveDateTime::parse(
        &param("X-Amz-Date")?,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .ok()?
    .assume_utc();
    let expires: i64 = param("X-Amz-Expires")?.parse().ok()?;
    signed_at.checked_add(time::Duration::seconds(expires))?.format(&time::format_description::well_known::Rfc3339).ok()
}

fn is_past(rfc3339: &str) -> bool {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .is_ok_and(|at| at < time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_this_machine() {
        for url in ["http://cdn.example.com/k", "http://10.0.0.1:9000/b/k", "http://127.0.0.1.evil.com/k"] {
            assert!(matches!(fetch(url), Err(DownloadError::Unencrypted { .. })), "{url}");
        }
        assert!(is_loopback("http://127.0.0.1:4566/b/k?x=1") && is_loopback("http://[::1]:8333/b") && is_loopback("http://localhost/k"));
    }

    #[test]
    fn userinfo_and_fragments_do_not_pass_for_this_machine() {
        for url in [
            "http://localhost:80@evil/k",
            "http://127.0.0.1@evil.com/k",
            "http://evil.com#@127.0.0.1/",
            "http://evil/?x=@localhost",
            "http://[::1]@evil/k",
            "http://[::1]evil/k",
            "http://localhost:80x/k",
        ] {
            assert!(!is_loopback(url), "{url}");
            assert!(matches!(fetch(url), Err(DownloadError::Unencrypted { .. })), "{url}");
        }
        for url in
            ["http://127.0.0.1:4566/b/k?x=1", "http://[::1]:8333/b", "http://[::1]/b", "http://localhost:9000?x=1", "http://127.0.0.1#f"]
        {
            assert!(is_loopback(url), "{url}");
        }
    }

    #[test]
    fn a_huge_expiry_does_not_panic() {
        let url = "http://127.0.0.1/b/k?X-Amz-Date=20260101T000000Z&X-Amz-Expires=9223372036854775807";
        assert_eq!(expiry_from_url(url), None);
    }

    const URL: &str =
        "http://127.0.0.1:4566/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T000000Z&X-Amz-Expires=7200&X-Amz-Signature=ab";

    #[test]
    fn s3_errors_are_explained() {
        let expired =
            "<Error><Code>AccessDenied</Code><Message>Request has expired</Message><Expires>2026-01-01T02:00:00Z</Expires></Error>";
        assert!(matches!(explain(403, expired, URL), DownloadError::Expired { expired_at: Some(t) } if t == "2026-01-01T02:00:00Z"));
        let tampered =
            "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>";
        assert!(matches!(explain(403, tampered, URL), DownloadError::BadSignature));
        assert!(matches!(explain(403, "", URL), DownloadError::Expired { .. }));
        assert!(matches!(explain(404, "<Error><Code>NoSuchKey</Code></Error>", URL), DownloadError::NotFound));
        assert_eq!(expiry_from_url(URL).as_deref(), Some("2026-01-01T02:00:00Z"));
    }

    #[test]
    fn only_http_links() {
        assert!(matches!(fetch("file:///etc/passwd"), Err(DownloadError::NotALink { .. })));
    }
}

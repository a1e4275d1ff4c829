//! Telling people: each step of just-in-time access (a request, a verdict, an issuance under
//! approval, a break-glass issuance) is published once through the environment's [`Notifier`]
//! (for AWS, its SNS topic), so that chat, mail or paging can subscribe. A notifier that cannot be
//! reached never blocks an issuance: it retries, then logs.

use async_trait::async_trait;
use serde::Serialize;

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// `requested`, `approved`, `denied`, `issued` or `break-glass`.
    pub event: &'static str,
    pub environment: String,
    pub request_id: Option<String>,
    pub requester: String,
    pub approvers: Vec<String>,
    pub principals: Vec<String>,
    /// Seconds of validity (asked for, or given).
    pub valid_for: u64,
    pub reason: String,
    /// What to run next, if anything (the approve command of a new request).
    pub command: Option<String>,
}

impl Notice {
    /// One line for a subject or a chat message.
    pub fn subject(&self) -> String {
        let subject = format!("sshca {}: {} {} ({})", self.environment, self.requester, self.event, self.principals.join(", "));
        subject.chars().take(99).collect()
    }
}

#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes `notice`; failures are the notifier's to retry and log.
    async fn notify(&self, notice: &Notice);
}

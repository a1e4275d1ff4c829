//! Just-in-time access on the wire: what a requester gets when its rule requires approval (a
//! [`Pending`] request to approve), what an approver sends (a [`Verdict`], in place of a key to
//! certify, its proof of identity bound to it like any request's), and the [`Answer`] that is
//! either of those outcomes or a certificate.

use serde::{Deserialize, Serialize};

/// An approver's verdict on a pending request. `digest` is the request's content as
/// `sshca requests` shows it: a verdict counts for that content only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub request_id: String,
    pub digest: String,
    pub approve: bool,
}

/// A request recorded as waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub request_id: String,
    pub digest: String,
    /// The proven requester.
    pub requester: String,
    /// The identity patterns that may approve it, and how many distinct approvers it needs.
    pub approvers: Vec<String>,
    pub count: u32,
    /// Unix seconds: approvals and the claim must come before.
    pub expires_at: u64,
    /// What an approver runs.
    pub approve_command: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAnswer {
    pub pending: Pending,
}

/// A verdict as recorded, and where its request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub request_id: String,
    pub approve: bool,
    /// Distinct approvals so far, and how many the request needs.
    pub approvals: u32,
    pub count: u32,
    pub denied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedAnswer {
    pub recorded: Recorded,
}

//! Just-in-time access for approvers: `sshca requests ENV` lists the access requests (who, what,
//! why, how old, where each stands); `sshca approve ENV ID` and `sshca deny ENV ID -r WHY` send
//! the approver's verdict, with the approver's own proof of identity, bound to the request's
//! digest: to the function, or `--local`.

use anyhow::{Context, Result};
use clap::Args;
use sshca_core::approval;
use sshca_core::policy::human_duration;
use sshca_core::time::unix_now;
use sshca_core::{Environment, SignRequest};
use sshca_proto::approval::{RecordedAnswer, Verdict};
use sshca_proto::request::Answer;

use crate::signer::Signer;

#[derive(Args)]
pub struct RequestsArgs {
    environment: String,
    /// Every request, not only those still waiting or approved and unclaimed.
    #[arg(long)]
    all: bool,
}

/// Lists the environment's access requests, oldest first.
pub async fn requests(env: &Environment, args: RequestsArgs) -> Result<()> {
    let now = unix_now();
    let standings = approval::list(env.audit_store().as_ref(), &args.environment).await?;
    let shown: Vec<_> = standings.iter().filter(|s| args.all || matches!(s.status(now), "pending" | "approved")).collect();
    if shown.is_empty() {
        eprintln!("no access requests waiting in {:?} (--all lists every one)", args.environment);
    }
    for standing in shown {
        let request = &standing.request;
        println!(
            "{id}  {status}  {requester}  principals {principals}  for {valid}  asked {age} ago  approvals {got}/{need}{denied}\n    reason: {reason}\n    key: {key}\n    digest: {digest}",
            id = request.id,
            status = standing.status(now),
            requester = request.requester,
            principals = request.principals.join(","),
            valid = human_duration(request.valid_for),
            age = human_duration(now.saturating_sub(request.created_at)),
            got = standing.tally.approvers.len(),
            need = request.approval.count,
            denied = if standing.tally.deniers.is_empty() { String::new() } else { format!("  denied by {}", standing.tally.deniers.join(", ")) },
            reason = request.reason,
            key = request.public_key_fingerprint,
            digest = request.digest(),
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct VerdictArgs {
    environment: String,
    /// The access request's id (`sshca requests ENV`).
    id: String,
    /// The request's digest as `sshca requests` shows it; default: read the request from the
    /// audit bucket (then it is printed first, so you see what you approve).
    #[arg(long)]
    digest: Option<String>,
    /// A note (for a denial: why, which is required).
    #[arg(short, long)]
    reason: Option<String>,
    /// Record it here with your AWS credentials instead of invoking the function.
    #[arg(long)]
    pub local: bool,
    /// The deployed sign_key function to invoke (name or ARN).
    #[arg(long, env = "SSHCA_FUNCTION", default_value = "sign_key")]
    pub function: String,
    /// The deployment's audience for proofs of identity (`sshca show-policy ENV` shows it).
    #[arg(long, env = "SSHCA_AUDIENCE")]
    pub audience: Option<String>,
}

/// Sends the verdict `approve` on the request `args.id`.
pub async fn verdict(signer: &Signer, env: Option<&Environment>, args: VerdictArgs, approve: bool) -> Result<()> {
    let digest = match (&args.digest, env) {
        (Some(digest), _) => digest.clone(),
        (None, Some(env)) => {
            sshca_core::request::check_request_id(&args.id)?;
            let request = approval::request::load(env.audit_store().as_ref(), &args.environment, &args.id).await?;
            eprintln!(
                "access request {}: {} asks for {} for {} because {:?}",
                request.id,
                request.requester,
                request.principals.join(","),
                human_duration(request.valid_for),
                request.reason
            );
            request.digest()
        }
        (None, None) => anyhow::bail!("pass --digest (from `sshca requests`), or --bucket to read the request from the audit trail"),
    };
    let reason = match (args.reason, approve) {
        (Some(reason), _) => reason,
        (None, true) => "approved".into(),
        (None, false) => anyhow::bail!("a denial says why: -r 'not during the freeze'"),
    };
    let request = SignRequest {
        environment: args.environment.clone(),
        reason,
        verdict: Some(Verdict { request_id: args.id.clone(), digest, approve }),
        requested_by: std::env::var("USER").ok(),
        ..Default::default()
    };
    match signer.ask(request).await.context("the verdict was not recorded")? {
        Answer::Recorded(RecordedAnswer { recorded }) => {
            let standing =
                if recorded.denied { "denied".to_owned() } else { format!("{} of {} approvals", recorded.approvals, recorded.count) };
            println!("{} {}: {standing}", if recorded.approve { "approved" } else { "denied" }, recorded.request_id);
            Ok(())
        }
        _ => anyhow::bail!("the function answered a verdict with something else"),
    }
}

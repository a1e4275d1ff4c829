//! Where a signing request goes (the issuing logic in this process, or the deployed function),
//! with a proof of the caller's AWS identity attached either way.

use std::sync::Arc;

use anyhow::{bail, Result};
use aws_config::SdkConfig;
use sshca_aws::s3::S3Store;
use sshca_client::Lambda;
use sshca_core::environment::read_policy;
use sshca_core::{request, Caller, IssueError, Issuer, SignRequest, SignResponse};
use sshca_proto::request::Answer;

pub(crate) enum Target {
    Local(Box<Issuer>),
    /// The function, and the bucket to read the environment's audience from when it is not given.
    Lambda(Lambda, Option<Arc<S3Store>>),
}

pub(crate) struct Signer {
    pub target: Target,
    pub config: SdkConfig,
    /// The deployment's audience (`sshca show-policy ENV`); read from the policy when `None`.
    pub audience: Option<String>,
}

impl Signer {
    /// Proves the caller's identity for `request` (unless it carries a proof already) and signs it.
    pub(crate) async fn sign(&self, request: SignRequest) -> Result<SignResponse> {
        sshca_client::invoke::expect_certificate(self.ask(request).await?)
    }

    /// [`Signer::sign`], answered with whatever the issuer answers (a pending request, a verdict recorded).
    pub(crate) async fn ask(&self, mut request: SignRequest) -> Result<Answer> {
        // Missing or expired credentials are named before anything else is tried with them.
        let credentials = sshca_client::proof::credentials(&self.config).await?;
        if request.identity.is_none() {
            if let Some(audience) = self.audience(&request.environment).await? {
                sshca_client::proof::prove_with(&self.config, credentials, &audience, &mut request)?;
            }
        }
        match &self.target {
            Target::Local(issuer) => {
                let caller = Caller { request_id: uuid::Uuid::new_v4().to_string() };
                Ok(issuer.answer(&request, &caller).await?)
            }
            Target::Lambda(lambda, _) => lambda.ask(&request).await,
        }
    }

    /// The audience proofs for `environment` must name, or `None` when the environment cannot
    /// say (the function then answers why: an unknown environment, a bad name…).
    async fn audience(&self, environment: &str) -> Result<Option<String>> {
        if let Some(audience) = &self.audience {
            return Ok(Some(audience.clone()));
        }
        if request::check_environment(environment).is_err() {
            return Ok(None);
        }
        let policy = match &self.target {
            // the issuer reports an unusable policy itself
            Target::Local(issuer) => issuer.environment().policy(environment).await.ok().map(|p| p.access.audience.clone()),
            Target::Lambda(_, Some(store)) => match read_policy(store.as_ref(), environment).await {
                Ok(policy) => Some(policy.access.audience),
                Err(IssueError::UnknownEnvironment(_)) => None,
                Err(err) => bail!("cannot read the audience of environment {environment:?} from its policy ({err}): pass --audience (shown by `sshca show-policy {environment}`)"),
            },
            Target::Lambda(_, None) => bail!(
                "which deployment is this request for? pass --audience (shown by `sshca show-policy {environment}`), or --bucket to read it from the policy"
            ),
        };
        Ok(policy.filter(|audience| !audience.is_empty()))
    }
}

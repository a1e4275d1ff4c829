//! Which KMS keys an environment's policy may name: keys made for it, tagged
//! `sshca:environment` = the environment (and `sshca:role` = `user` or `host` for a CA key), in
//! this account and region. The policy lives in the bucket: without this, anyone who can write
//! there could name a key of their own, in any account, as the next CA and have every server trust
//! it at the next `sshca config` roll-out.

use aws_sdk_kms::types::KeyState;
use tokio::sync::OnceCell;

use sshca_core::error::CaError;

use crate::error::kms_error;

pub struct KeyOwnership {
    kms: aws_sdk_kms::Client,
    sts: aws_sdk_sts::Client,
    account: OnceCell<String>,
}

impl KeyOwnership {
    pub fn new(kms: aws_sdk_kms::Client, sts: aws_sdk_sts::Client) -> Self {
        Self { kms, sts, account: OnceCell::new() }
    }

    /// Refuses `key_id` unless it is enabled, in this account and region, and tagged for
    /// `environment` (and `role`, when given).
    pub async fn check(&self, key_id: &str, environment: &str, role: Option<&str>) -> Result<(), CaError> {
        let not_ours = |why: String| CaError::NotOurs {
            key_id: key_id.to_owned(),
            why,
            environment: environment.to_owned(),
            role: role.unwrap_or("-").to_owned(),
        };
        let described = self.kms.describe_key().key_id(key_id).send().await.map_err(|err| kms_error(key_id, err))?;
        let metadata =
            described.key_metadata().ok_or_else(|| CaError::Kms(format!("KMS described key {key_id:?} without its metadata")))?;
        if matches!(metadata.key_state(), Some(KeyState::Disabled) | Some(KeyState::PendingDeletion)) {
            return Err(CaError::Disabled { key_id: key_id.to_owned() });
        }
        let arn = metadata.arn().unwrap_or_default();
        let mut fields = arn.split(':');
        let (region, account) = (fields.nth(3).unwrap_or_default(), fields.next().unwrap_or_default());
        let own_account = self.account().await?;
        if account != own_account {
            return Err(not_ours(format!("it is in account {account}, not this account ({own_account})")));
        }
        let own_region = self.kms.config().region().map(|r| r.to_string()).unwrap_or_default();
        if !own_region.is_empty() && region != own_region {
            return Err(not_ours(format!("it is in region {region}, not {own_region}")));
        }
        let tags = self.kms.list_resource_tags().key_id(key_id).send().await.map_err(|err| kms_error(key_id, err))?;
        let tag = |name: &str| tags.tags().iter().find(|t| t.tag_key() == name).map(|t| t.tag_value().to_owned());
        let expected = [("sshca:environment", Some(environment)), ("sshca:role", role)];
        for (name, want) in expected {
            let Some(want) = want else { continue };
            match tag(name) {
                Some(value) if value == want => {}
                Some(value) => return Err(not_ours(format!("it is tagged {name}={value}, not {want}"))),
                None => return Err(not_ours(format!("it has no {name} tag"))),
            }
        }
        Ok(())
    }

    /// This process's own account, as STS names it (asked once).
    async fn account(&self) -> Result<&str, CaError> {
        let account = self
            .account
            .get_or_try_init(|| async {
                let answer = self.sts.get_caller_identity().send().await.map_err(|err| {
                    CaError::Kms(format!("STS could not name this account: {}", aws_sdk_sts::error::DisplayErrorContext(err)))
                })?;
                answer.account().map(str::to_owned).ok_or_else(|| CaError::Kms("STS named no account".into()))
            })
            .await?;
        Ok(account)
    }
}

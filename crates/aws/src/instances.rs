//! The EC2 instance a host's session runs on, and the names a host rule certifies for it. An EC2
//! instance role's session is named by AWS after the instance (`i-…`); the instance is looked up
//! (`ec2:DescribeInstances`) and must be running, selected by the rule (VPC, subnet, tags), and
//! carry the proven role in its instance profile (`iam:GetInstanceProfile`, by the role's unique
//! id): a session named after someone else's instance names nothing. A rule about a member
//! account looks its instances up there, as that account's read-only lookup role.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::SdkConfig;
use sshca_core::access::FromInstance;
use sshca_core::error::IssueError;
use sshca_core::identity::Identity;
use sshca_core::request::truncate_for_message;

use crate::ec2::{Ec2, Ec2Error, Instance};
use crate::error::lookup_failed;

/// The clients that look instances up in one account.
#[derive(Clone)]
struct Lookup {
    ec2: Ec2,
    iam: aws_sdk_iam::Client,
}

pub struct Instances {
    config: SdkConfig,
    own: Lookup,
    /// By lookup role: built once per container, their credentials cached and refreshed by the SDK.
    members: Mutex<HashMap<String, Lookup>>,
}

fn refused(identity: &Identity, why: String) -> IssueError {
    IssueError::AccessDenied(format!("{} gets no host certificate: {why}", identity.name))
}

impl Instances {
    pub fn new(config: SdkConfig, ec2: Ec2, iam: aws_sdk_iam::Client) -> Self {
        Self { config, own: Lookup { ec2, iam }, members: Mutex::default() }
    }

    /// The clients of this account, or of the member account whose lookup role is `lookup_role`.
    async fn lookup(&self, lookup_role: Option<&str>) -> Lookup {
        let Some(role) = lookup_role else { return self.own.clone() };
        if let Some(lookup) = self.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(role) {
            return lookup.clone();
        }
        let config = crate::as_role(&self.config, role).await;
        let lookup = Lookup { iam: aws_sdk_iam::Client::new(&config), ec2: Ec2::new(config) };
        self.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(role.to_owned(), lookup.clone());
        lookup
    }

    /// The instance's names: its private DNS name, its private IPv4 addresses, and its `Name`
    /// tag under `from.name_suffix`, in that order.
    /// `lookup_role`: the member account's lookup role, for a rule about that account.
    pub async fn names(&self, identity: &Identity, lookup_role: Option<&str>, from: &FromInstance) -> Result<Vec<String>, IssueError> {
        let instance_id = match identity.session.as_deref() {
            Some(session) if session.starts_with("i-") && session.len() <= 32 && session[2..].bytes().all(|b| b.is_ascii_hexdigit()) => {
                session
            }
            _ => return Err(refused(identity, "its session is not named after an EC2 instance (i-…)".into())),
        };
        let lookup = self.lookup(lookup_role).await;
        let instance = lookup.ec2.describe_instance(instance_id).await.map_err(|err| match err {
            Ec2Error::NotFound => refused(identity, format!("there is no instance {instance_id} in this account and region")),
            failed @ Ec2Error::Failed(_) => lookup_failed("the host's instance", "ec2:DescribeInstances", failed),
        })?;
        check(&lookup.iam, identity, &instance, from).await?;
        let mut names = Vec::new();
        names.extend(Some(instance.private_dns_name.clone()).filter(|name| !name.is_empty()));
        names.extend(instance.private_ips.iter().cloned());
        if let Some(suffix) = &from.name_suffix {
            if let Some(name) = instance.tag("Name") {
                let label = name.to_ascii_lowercase();
                if label.is_empty() || label.len() > 63 || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(refused(identity, format!("its Name tag {:?} is not a host name label", truncate_for_message(name))));
                }
                names.push(format!("{label}.{suffix}"));
            }
        }
        let mut unique = Vec::new();
        for name in names {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        Ok(unique)
    }
}

/// Refuses an instance that is not running, not selected by `from`, or whose instance profile
/// does not hold the proven role.
async fn check(iam: &aws_sdk_iam::Client, identity: &Identity, instance: &Instance, from: &FromInstance) -> Result<(), IssueError> {
    let id = &instance.id;
    if instance.state != "running" {
        let state = if instance.state.is_empty() { "in no state" } else { &instance.state };
        return Err(refused(identity, format!("instance {id} is {state}, not running")));
    }
    let outside = |what: &str, value: Option<&str>, allowed: &[String]| {
        (!allowed.is_empty() && !value.is_some_and(|value| allowed.iter().any(|a| a == value))).then(|| {
            refused(
                identity,
                format!("instance {id} is in {what} {:?}, outside the rule's {}", value.unwrap_or("none"), allowed.join(", ")),
            )
        })
    };
    if let Some(err) =
        outside("VPC", instance.vpc_id.as_deref(), &from.vpcs).or_else(|| outside("subnet", instance.subnet_id.as_deref(), &from.subnets))
    {
        return Err(err);
    }
    for (key, value) in &from.tags {
        if instance.tag(key) != Some(value.as_str()) {
            return Err(refused(identity, format!("instance {id} lacks the tag {key}={value} the rule requires")));
        }
    }
    let profile_arn = instance.instance_profile_arn.as_deref().unwrap_or_default();
    let profile = profile_arn.rsplit_once("instance-profile/").map(|(_, path)| path.rsplit('/').next().unwrap_or(path));
    let Some(profile) = profile.filter(|name| !name.is_empty()) else {
        return Err(refused(identity, format!("instance {id} has no instance profile")));
    };
    let found = iam
        .get_instance_profile()
        .instance_profile_name(profile)
        .send()
        .await
        .map_err(|err| lookup_failed(&format!("the instance profile {profile}"), "iam:GetInstanceProfile", err))?;
    let roles = found.instance_profile().map(|profile| profile.roles()).unwrap_or_default();
    if !roles.iter().any(|role| role.role_id() == identity.principal_id) {
        return Err(refused(identity, format!("instance {id} runs with another role (its profile {profile}), not the proven one")));
    }
    Ok(())
}

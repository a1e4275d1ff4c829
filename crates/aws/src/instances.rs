//! The EC2 instance a host's session runs on, and the names a host rule certifies for it. An EC2
//! instance role's session is named by AWS after the instance (`i-…`); the instance is looked up
//! (`ec2:DescribeInstances`) and must be running, selected by the rule (VPC, subnet, tags), and
//! carry the proven role in its instance profile (`iam:GetInstanceProfile`, by the role's unique
//! id): a session named after someone else's instance names nothing.

use aws_sdk_ec2::types::{Instance, InstanceStateName};
use sshca_core::access::FromInstance;
use sshca_core::error::IssueError;
use sshca_core::identity::Identity;
use sshca_core::request::truncate_for_message;

use crate::error::lookup_failed;

pub struct Instances {
    ec2: aws_sdk_ec2::Client,
    iam: aws_sdk_iam::Client,
}

fn refused(identity: &Identity, why: String) -> IssueError {
    IssueError::AccessDenied(format!("{} gets no host certificate: {why}", identity.name))
}

impl Instances {
    pub fn new(ec2: aws_sdk_ec2::Client, iam: aws_sdk_iam::Client) -> Self {
        Self { ec2, iam }
    }

    /// The instance's names: its private DNS name, its private IPv4 addresses, and its `Name`
    /// tag under `from.name_suffix`, in that order.
    pub async fn names(&self, identity: &Identity, from: &FromInstance) -> Result<Vec<String>, IssueError> {
        let instance_id = match identity.session.as_deref() {
            Some(session) if session.starts_with("i-") && session.len() <= 32 && session[2..].bytes().all(|b| b.is_ascii_hexdigit()) => {
                session
            }
            _ => return Err(refused(identity, "its session is not named after an EC2 instance (i-…)".into())),
        };
        let answer = self.ec2.describe_instances().instance_ids(instance_id).send().await.map_err(|err| {
            if aws_sdk_ec2::error::ProvideErrorMetadata::code(&err) == Some("InvalidInstanceID.NotFound") {
                refused(identity, format!("there is no instance {instance_id} in this account and region"))
            } else {
                lookup_failed("the host\'s instance", "ec2:DescribeInstances", err)
            }
        })?;
        let instance = answer
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find(|instance| instance.instance_id() == Some(instance_id))
            .ok_or_else(|| refused(identity, format!("there is no instance {instance_id} in this account and region")))?;
        self.check(identity, instance, from).await?;
        let mut names = Vec::new();
        names.extend(instance.private_dns_name().filter(|name| !name.is_empty()).map(str::to_owned));
        for interface in instance.network_interfaces() {
            names.extend(interface.private_ip_addresses().iter().filter_map(|address| address.private_ip_address()).map(str::to_owned));
        }
        names.extend(instance.private_ip_address().map(str::to_owned));
        if let Some(suffix) = &from.name_suffix {
            if let Some(name) = tag(instance, "Name") {
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

    /// Refuses an instance that is not running, not selected by `from`, or whose instance profile
    /// does not hold the proven role.
    async fn check(&self, identity: &Identity, instance: &Instance, from: &FromInstance) -> Result<(), IssueError> {
        let id = instance.instance_id().unwrap_or_default();
        let state = instance.state().and_then(|state| state.name());
        if state != Some(&InstanceStateName::Running) {
            return Err(refused(identity, format!("instance {id} is {}, not running", state.map_or("in no state", |s| s.as_str()))));
        }
        let outside = |what: &str, value: Option<&str>, allowed: &[String]| {
            (!allowed.is_empty() && !value.is_some_and(|value| allowed.iter().any(|a| a == value))).then(|| {
                refused(
                    identity,
                    format!("instance {id} is in {what} {:?}, outside the rule's {}", value.unwrap_or("none"), allowed.join(", ")),
                )
            })
        };
        if let Some(err) = outside("VPC", instance.vpc_id(), &from.vpcs).or_else(|| outside("subnet", instance.subnet_id(), &from.subnets))
        {
            return Err(err);
        }
        for (key, value) in &from.tags {
            if tag(instance, key) != Some(value.as_str()) {
                return Err(refused(identity, format!("instance {id} lacks the tag {key}={value} the rule requires")));
            }
        }
        let profile_arn = instance.iam_instance_profile().and_then(|profile| profile.arn()).unwrap_or_default();
        let profile = profile_arn.rsplit_once("instance-profile/").map(|(_, path)| path.rsplit('/').next().unwrap_or(path));
        let Some(profile) = profile.filter(|name| !name.is_empty()) else {
            return Err(refused(identity, format!("instance {id} has no instance profile")));
        };
        let found = self
            .iam
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
}

fn tag<'a>(instance: &'a Instance, key: &str) -> Option<&'a str> {
    instance.tags().iter().find(|tag| tag.key() == Some(key)).and_then(|tag| tag.value())
}

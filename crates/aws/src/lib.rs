//! `sshca_aws`: sshca's environments on AWS. The [`Store`](sshca_core::Store) is S3 ([`s3`]), CA
//! keys are KMS keys or KMS-sealed keys ([`kms`], made by [`create_key`], checked by
//! [`key_ownership`]), callers prove who they are to STS ([`sts`], the `aws` identity provider,
//! whose groups are the [`directory`]'s: IAM and IAM Identity Center; hosts are named after their
//! EC2 [`instances`]),
//! and CloudTrail's record of `kms:Sign` is held against the books ([`signings`]). [`Aws`] builds
//! the clients once per process, from the standard configuration chain.

use std::sync::Arc;

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_sdk_sts::config::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use sshca_core::identity::Providers;
use sshca_core::{Environment, Issuer};

pub mod create_key;
pub mod directory;
pub mod ec2;
mod error;
pub mod instances;
pub mod key_ownership;
pub mod kms;
pub mod query;
pub mod s3;
pub mod signings;
pub mod sns;
pub mod sts;

use directory::Directory;
use instances::Instances;
use kms::KmsCaKeys;
use s3::S3Store;
use sts::StsProvider;

/// The standard configuration chain with sshca's HTTPS client (rustls on ring). Every AWS client of
/// sshca's binaries starts here.
pub fn config_loader() -> ConfigLoader {
    let https = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

/// `config` acting as `role_arn` (a member account's read-only lookup role): its credentials come
/// from STS's AssumeRole, made with `config`'s own, and are refreshed before they expire.
pub async fn as_role(config: &SdkConfig, role_arn: &str) -> SdkConfig {
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn).session_name("sshca-lookup").configure(config).build().await;
    config.to_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build()
}

/// The AWS clients of one process.
#[derive(Clone)]
pub struct Aws {
    pub config: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub kms: aws_sdk_kms::Client,
    pub sts: aws_sdk_sts::Client,
    pub iam: aws_sdk_iam::Client,
    pub identity_store: aws_sdk_identitystore::Client,
    pub ec2: ec2::Ec2,
}

impl Aws {
    /// Credentials, region and endpoints from the standard chain: `AWS_*` variables, profiles,
    /// the Lambda role; `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_KMS` /
    /// `AWS_ENDPOINT_URL_STS` point it at S3-compatible servers, local KMS and STS.
    pub async fn from_env() -> Self {
        Self::from_config(&config_loader().load().await)
    }

    pub fn from_config(config: &SdkConfig) -> Self {
        // S3-compatible servers (MinIO, SeaweedFS, LocalStack) are addressed by path: their
        // bucket names are not DNS names under the endpoint.
        let custom_s3_endpoint = config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
        let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(custom_s3_endpoint).build();
        Self {
            config: config.clone(),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            kms: aws_sdk_kms::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            identity_store: aws_sdk_identitystore::Client::new(config),
            ec2: ec2::Ec2::new(config.clone()),
        }
    }

    /// The identity providers of an environment on AWS.
    pub fn providers(&self) -> Providers {
        let directory = Directory::new(self.iam.clone(), self.identity_store.clone());
        let instances = Instances::new(self.config.clone(), self.ec2.clone(), self.iam.clone());
        Providers::default().with(Arc::new(StsProvider::new(self.sts.clone(), directory, instances)))
    }

    /// The environment in this account's bucket(s) and KMS keys. Audit records go to
    /// `audit_bucket` when given (e.g. a bucket with S3 Object Lock), else to `bucket`.
    pub fn environment(&self, bucket: &str, audit_bucket: Option<&str>) -> Environment {
        let store = Arc::new(S3Store::new(self.s3.clone(), bucket));
        let audit = Arc::new(S3Store::new(self.s3.clone(), audit_bucket.unwrap_or(bucket)));
        let ca_keys = Arc::new(KmsCaKeys::new(self.kms.clone(), self.sts.clone(), store.clone()));
        let environment = Environment::new(store, audit, ca_keys, self.providers());
        // just-in-time access is announced on the topic the deployment names
        match std::env::var("SSHCA_TOPIC_ARN").ok().filter(|arn| !arn.is_empty()) {
            Some(topic) => environment.with_notifier(Arc::new(sns::SnsNotifier::new(self.config.clone(), topic))),
            None => environment,
        }
    }

    /// The issuer of that environment.
    pub fn issuer(&self, bucket: &str, audit_bucket: Option<&str>) -> Issuer {
        Issuer::new(self.environment(bucket, audit_bucket))
    }
}

//! Where users stumble: AWS credentials and permissions. Each failure becomes one line that names
//! the fix, instead of the SDK's multi-line Debug dump.

use anyhow::{anyhow, Error};
use aws_credential_types::provider::error::CredentialsError;

fn profile_hint() -> String {
    match std::env::var("AWS_PROFILE") {
        Ok(profile) if !profile.is_empty() => format!("--profile {profile}"),
        _ => "--profile NAME".to_owned(),
    }
}

pub fn no_region() -> Error {
    anyhow!("no AWS region is set: set AWS_REGION to the region of the sign_key function (or `region` in your AWS profile)")
}

pub fn no_credentials() -> Error {
    anyhow!(
        "no AWS credentials found: run `aws sso login {0}` and set AWS_PROFILE to that profile (or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        profile_hint()
    )
}

/// Why the credential chain gave nothing, in one line.
pub fn credentials(err: CredentialsError) -> Error {
    let detail = err.to_string();
    let chain = format!("{}", aws_sdk_lambda::error::DisplayErrorContext(&err)).to_ascii_lowercase();
    match err {
        CredentialsError::CredentialsNotLoaded(_) => match missing_profile() {
            Some((profile, file)) => anyhow!(
                "AWS_PROFILE names the profile {profile:?}, which {file} does not define: list yours with `aws configure list-profiles`, or set it up with `aws configure sso --profile {profile}`"
            ),
            None => no_credentials(),
        },
        _ if chain.contains("expired") || chain.contains("token") && chain.contains("sso") => anyhow!(
            "your AWS SSO session has expired: run `aws sso login {}`, then try again",
            profile_hint()
        ),
        CredentialsError::InvalidConfiguration(_) => anyhow!(
            "your AWS profile is not usable ({detail}): check AWS_PROFILE and ~/.aws/config"
        ),
        CredentialsError::ProviderTimedOut(_) => {
            anyhow!("loading AWS credentials timed out: check the network, or run `aws sso login {}`", profile_hint())
        }
        _ => anyhow!("AWS credentials could not be loaded ({detail}): run `aws sso login {}` or check AWS_PROFILE", profile_hint()),
    }
}

/// A failed call to AWS (`service` names it in the message), as the fix to make.
pub fn call(service: &str, code: Option<&str>, message: Option<&str>, action: &str, resource: &str) -> Error {
    let message = message.unwrap_or("no message");
    match code {
        Some("AccessDeniedException" | "AccessDenied") => anyhow!(
            "you may not call {action} on {resource}: ask an admin to grant it to your AWS identity (for users and hosts: the SshcaInvoke managed policy of infra/template.yaml)"
        ),
        Some("ResourceNotFoundException") => anyhow!(
            "{resource} does not exist in this region: pass --function NAME or set SSHCA_FUNCTION, and AWS_REGION to the function's region"
        ),
        Some("ExpiredTokenException" | "ExpiredToken") => {
            anyhow!("your AWS credentials have expired: run `aws sso login {}`, then try again", profile_hint())
        }
        Some("UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException" | "SignatureDoesNotMatch") => anyhow!(
            "{service} does not accept your AWS credentials ({message}): check AWS_PROFILE, or run `aws sso login {}`",
            profile_hint()
        ),
        Some(code) => anyhow!("{service} refused {action}: {code}: {message}"),
        None => anyhow!("{service} could not be reached for {action}: {message}: check the network and AWS_REGION"),
    }
}

/// The profile `AWS_PROFILE` names when neither AWS file defines it, with the config file's path.
fn missing_profile() -> Option<(String, String)> {
    let profile = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty())?;
    let home = std::env::var("HOME").unwrap_or_default();
    let config = std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| format!("{home}/.aws/config"));
    let credentials = std::env::var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|_| format!("{home}/.aws/credentials"));
    let defines = |path: &str, headers: &[String]| {
        std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|line| headers.iter().any(|h| line.trim() == h)))
    };
    let in_config = defines(&config, &[format!("[profile {profile}]"), format!("[{profile}]")]);
    let in_credentials = defines(&credentials, &[format!("[{profile}]")]);
    (!in_config && !in_credentials).then_some((profile, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_fix_in_one_line() {
        let cases = [
            (Some("AccessDeniedException"), "grant it to your AWS identity"),
            (Some("ResourceNotFoundException"), "pass --function NAME or set SSHCA_FUNCTION"),
            (Some("ExpiredTokenException"), "aws sso login"),
            (Some("UnrecognizedClientException"), "does not accept your AWS credentials"),
            (None, "could not be reached"),
        ];
        for (code, expected) in cases {
            let message = call("Lambda", code, Some("m"), "lambda:InvokeFunction", "function \"f\"").to_string();
            assert!(message.contains(expected), "{code:?}: {message}");
            assert_eq!(message.lines().count(), 1, "{message}");
        }
        assert!(call("Lambda", Some("AccessDeniedException"), None, "lambda:InvokeFunction", "x")
            .to_string()
            .contains("lambda:InvokeFunction"));
    }
}

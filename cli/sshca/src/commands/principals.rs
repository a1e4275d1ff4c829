//! `sshca config ENV --principals-files`: the other side of the access rules. A server whose
//! sshd_config says `AuthorizedPrincipalsFile /etc/ssh/auth_principals/%u` lets a certificate log
//! in as a user only with a principal that user's file lists; this prints, for each login user,
//! the file the rules imply. A principal logs in as the user of its own name unless
//! `--login-for PRINCIPAL=USER` says otherwise (e.g. `root-oncall=root`).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use sshca_core::access::Grant;
use sshca_core::pattern::matches_any;
use sshca_core::policy::Policy;

/// The files' contents, each under a comment naming its path and which rules (and groups) grant
/// its principals.
pub fn principals_files(policy: &Policy, login_for: &[String]) -> Result<String> {
    let mut logins: BTreeMap<String, String> = BTreeMap::new();
    for mapping in login_for {
        let Some((principal, login)) = mapping.split_once('=').filter(|(p, l)| !p.is_empty() && is_login_name(l)) else {
            bail!("--login-for {mapping:?} must be PRINCIPAL=USER, USER a login name (letters, digits, . _ -)");
        };
        logins.insert(principal.to_owned(), login.to_owned());
    }
    // login user → principal → who grants it
    let mut files: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut templated = Vec::new();
    for (index, rule) in policy.access.rules.iter().enumerate().filter(|(_, rule)| rule.grant == Grant::User) {
        let by_rule = |what: &str| format!("rule {}{what}", index + 1);
        let granted = rule.principals.iter().map(|p| (p, by_rule(""))).chain(
            rule.groups.iter().flat_map(|(group, principals)| principals.iter().map(move |p| (p, by_rule(&format!(" group {group}"))))),
        );
        for (principal, source) in granted {
            if principal.contains('{') {
                templated.push(format!("{source} grants {principal}"));
                continue;
            }
            // a principal outside the environment's allowed ones is never signed
            if !policy.allowed_principals.is_empty() && !matches_any(&policy.allowed_principals, principal) {
                continue;
            }
            let login = logins.get(principal).cloned().unwrap_or_else(|| principal.clone());
            if !is_login_name(&login) {
                bail!("principal {principal:?} is no login name: say which user it logs in as with --login-for '{principal}=USER'");
            }
            files.entry(login).or_default().entry(principal.clone()).or_default().push(source);
        }
    }
    let mut out = String::from("# /etc/ssh/auth_principals/<user>: the principals that may log in as <user>, one per line.\n");
    for line in &templated {
        out.push_str(&format!("# {line}: each such user's own file lists the user's own name too\n"));
    }
    for (login, principals) in &files {
        out.push_str(&format!("# /etc/ssh/auth_principals/{login}\n"));
        for (principal, sources) in principals {
            out.push_str(&format!("{principal}\t# {}\n", sources.join(", ")));
        }
    }
    Ok(out)
}

fn is_login_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && !name.starts_with('-') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sshca_core::access::{AccessRule, Grant};
    use sshca_core::policy::Policy;

    use super::principals_files;

    fn policy() -> Policy {
        let mut policy = Policy::new("prod");
        let mut engineers = AccessRule::new("arn:aws:iam::000000000000:user/*", Grant::User);
        engineers.principals = vec!["{user}".into()];
        engineers.groups = BTreeMap::from([
            ("sre".to_owned(), vec!["root-oncall".to_owned(), "deploy".to_owned()]),
            ("dba".to_owned(), vec!["postgres".to_owned(), "deploy".to_owned()]),
        ]);
        let mut admins = AccessRule::admin("arn:aws:iam::000000000000:user/admin");
        admins.principals = vec!["ignored".into()];
        policy.access.rules = vec![admins, engineers];
        policy
    }

    #[test]
    fn each_login_user_lists_the_principals_the_rules_grant_it() {
        let files = principals_files(&policy(), &["root-oncall=root".into()]).unwrap();
        assert_eq!(
            files,
            "# /etc/ssh/auth_principals/<user>: the principals that may log in as <user>, one per line.\n\
             # rule 2 grants {user}: each such user's own file lists the user's own name too\n\
             # /etc/ssh/auth_principals/deploy\n\
             deploy\t# rule 2 group dba, rule 2 group sre\n\
             # /etc/ssh/auth_principals/postgres\n\
             postgres\t# rule 2 group dba\n\
             # /etc/ssh/auth_principals/root\n\
             root-oncall\t# rule 2 group sre\n"
        );
    }

    #[test]
    fn principals_the_environment_never_signs_are_left_out_and_odd_names_need_a_login() {
        let mut policy = policy();
        policy.allowed_principals = vec!["deploy".into(), "postgres".into(), "{user}".into()];
        let files = principals_files(&policy, &[]).unwrap();
        assert!(!files.contains("root-oncall") && files.contains("auth_principals/postgres"), "{files}");
        policy.allowed_principals.clear();
        policy.access.rules[1].principals.push("ops team".into());
        let err = principals_files(&policy, &[]).unwrap_err().to_string();
        assert!(err.contains("--login-for 'ops team=USER'"), "{err}");
        assert!(principals_files(&policy, &["x=../etc".into()]).is_err());
    }
}

//! The one pattern rule of sshca, OpenSSH's: for principals, host names, ARNs and role names.

/// Whether `name` matches any of `patterns`.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| wildcard_match(pattern.as_bytes(), name.as_bytes()))
}

/// OpenSSH-style pattern: `*` matches any run of characters, `?` exactly one. Written by hand
/// because the only rule needed is this one, and a glob crate would add path semantics
/// (`/` handling, character classes) that principals must not have.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    n = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_openssh() {
        assert!(wildcard_match(b"web-*", b"web-1"));
        assert!(wildcard_match(b"*", b"anything"));
        assert!(wildcard_match(b"a?c", b"abc"));
        assert!(wildcard_match(b"*.example.com", b"a.b.example.com"));
        assert!(!wildcard_match(b"web-*", b"db-1"));
        assert!(!wildcard_match(b"deploy", b"deployer"));
        assert!(!wildcard_match(b"*.example.com", b"example.com"));
    }
}

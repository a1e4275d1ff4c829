//! Who a request comes from, as its identity provider proved it: provider-neutral, so that the
//! access rules ([`crate::access`]) judge every provider's callers alike.

use std::collections::BTreeMap;

/// A caller as its provider proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider that proved it (its [`IdentityProvider::name`]).
    pub provider: String,
    /// Its full name, which access rules match (for AWS: the caller's ARN).
    pub name: String,
    /// The provider's stable id of this caller (for AWS: STS's user id, `AROA…:session`).
    pub subject: String,
    /// The stable id of the principal behind it, which an access rule may be bound to (for AWS:
    /// the role's or user's unique id, `AROA…`, `AIDA…`): a name can be taken again, an id not.
    pub principal_id: String,
    /// The user it names (for AWS: an IAM user's name, or an assumed role's name).
    pub user: Option<String>,
    /// Its session's name, where it is a session (for AWS: an assumed role's session name).
    pub session: Option<String>,
    /// Further facts the provider vouches for (for AWS: `account`).
    pub attributes: BTreeMap<String, String>,
    /// The directory groups it is in, once looked up (only for a rule that maps groups).
    pub groups: Option<Vec<String>>,
    /// The names of the instance it runs on, once looked up (only for a host rule `from_instance`).
    pub instance_names: Option<Vec<String>>,
}

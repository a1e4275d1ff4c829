//! The issuance itself: request → policy → proof of identity → access rules → serial → KMS
//! signature → audit → certificate → URL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ssh_key::{HashAlg, PublicKey};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::{debug_span, error, info, warn, Instrument};
use uuid::Uuid;

use crate::access::MAX_GROUPS_TTL_SECONDS;
use crate::approval::{self, Gate};
use crate::audit::{self, AuditEntry, Event};
use crate::ca::Signer;
use crate::certificate::sign_certificate;
use crate::decide::{self, Requester};
use crate::environment::Environment;
use crate::error::IssueError;
use crate::identity::{Binding, Identity};
use crate::layout;
use crate::policy::{Plan, Policy};
use crate::recent::Recent;
use crate::request::{self, check_syntax, parse_public_key, request_hash, CertKind, SignRequest, SignResponse};
use crate::revocation_log;
use crate::serial::SerialLeases;
use crate::store::{put_once, refuse_ignored_conditions, Condition};
use crate::time::unix_now;
use sshca_proto::approval::{Pending, PendingAnswer, RecordedAnswer};
use sshca_proto::request::Answer;

/// How long this container trusts what it read of the revoked keys and wrote to the key cache.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// The invocation a request came in (who asks is what the request's proof proves).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub request_id: String,
}

/// Issues certificates in an [`Environment`]; holds the per-container serial lease and caches.
/// Build it once and share it between requests.
pub struct Issuer {
    environment: Environment,
    serials: SerialLeases,
    /// The public keys revoked in each environment (bare OpenSSH lines), refused at issuance.
    revoked_keys: Recent<Arc<std::collections::BTreeSet<String>>>,
    /// The public keys this container last wrote to the key cache, so an unchanged key is not
    /// written again on every request.
    cached_keys: Recent<String>,
    /// The directory groups of each caller (by provider and subject) this container last read.
    groups: Recent<Arc<Vec<String>>>,
    /// Whether both stores were seen to honour conditional creates (checked once).
    conditions_honoured: tokio::sync::OnceCell<()>,
    /// Void records that could not be written when their serial was voided (the audit store was
    /// down); each request tries them again first.
    pending_voids: Mutex<Vec<(AuditEntry, OffsetDateTime)>>,
}

impl Issuer {
    /// An issuer that leases one serial at a time: right for a process that signs once.
    pub fn new(environment: Environment) -> Self {
        Self {
            environment,
            serials: SerialLeases::new(1, Uuid::new_v4().to_string()),
            revoked_keys: Recent::new(CACHE_TTL),
            groups: Recent::new(Duration::from_secs(MAX_GROUPS_TTL_SECONDS)),
            conditions_honoured: tokio::sync::OnceCell::new(),
            cached_keys: Recent::new(CACHE_TTL),
            pending_voids: Mutex::new(Vec::new()),
        }
    }

    /// Leases serials `block` at a time, naming this signer `holder` in the lease records: one
    /// counter write per block instead of per certificate, for long-lived signers.
    pub fn with_serial_block(mut self, block: u64, holder: impl Into<String>) -> Self {
        self.serials = SerialLeases::new(block, holder);
        self
    }

    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// Keeps a user's public key so later requests may leave it out; `environment: None` stores the
    /// key for every environment.
    pub async fn cache_public_key(&self, environment: Option<&str>, username: &str, public_key: &str) -> Result<PublicKey, IssueError> {
        request::check_username(username)?;
        if let Some(environment) = environment {
            request::check_environment(environment)?;
        }
        let key = parse_public_key(public_key)?;
        self.store_public_key(environment, CertKind::User, username, &key).await?;
        Ok(key)
    }

    async fn store_public_key(&self, environment: Option<&str>, kind: CertKind, username: &str, key: &PublicKey) -> Result<(), IssueError> {
        let line = key.to_openssh().map_err(|err| IssueError::InvalidPublicKey(err.to_string()))?;
        let object = layout::cached_public_key(environment, kind, username);
        if self.cached_keys.get(&object).as_deref() == Some(line.as_str()) {
            return Ok(());
        }
        self.environment.store().put(&object, format!("{line}\n").into_bytes(), Condition::Always).await?;
        self.cached_keys.insert(object, line);
        Ok(())
    }

    /// Signs a certificate as the request asks, its proven caller may get and the policy allows.
    /// The audit record is durable before the certificate object and the URL exist; a serial
    /// that is taken but not handed out is recorded as void. Each step that waits on a store, a
    /// key or a provider runs in a `debug` span named `issue.<step>` (the benchmark's breakdown).
    pub async fn issue(&self, request: &SignRequest, caller: &Caller) -> Result<SignResponse, IssueError> {
        match self.issue_or_wait(request, caller).await? {
            Answer::Issued(response) => Ok(response),
            Answer::Pending(PendingAnswer { pending }) => Err(IssueError::AccessDenied(format!(
                "a certificate under this access rule needs approval: access request {} is recorded, and an approver runs `{}`",
                pending.request_id, pending.approve_command
            ))),
            Answer::Recorded(_) => {
                Err(IssueError::InvalidRequest("a verdict certifies no key: send it as a verdict (`sshca approve`)".into()))
            }
        }
    }

    /// What `sign_key` answers: a verdict on an access request is recorded (by a proven approver),
    /// anything else is [`Issuer::issue`]d or, under a rule that requires approval, recorded as a
    /// request waiting for it.
    pub async fn answer(&self, request: &SignRequest, caller: &Caller) -> Result<Answer, IssueError> {
        if request.verdict.is_none() {
            return self.issue_or_wait(request, caller).await;
        }
        check_syntax(request)?;
        let policy = self.environment.policy(&request.environment).await?;
        let now = unix_now();
        let Requester::Proven(approver) = self.requester(&policy, request, now).await? else {
            return Err(IssueError::AccessDenied("a verdict needs its approver's proof of identity".into()));
        };
        let (recorded, notice) = approval::give_verdict(self.environment.audit_store().as_ref(), &approver, request, now).await?;
        info!(request = %recorded.request_id, approve = recorded.approve, approver = %approver.name, "verdict recorded");
        self.environment.notify(&notice).await;
        Ok(Answer::Recorded(RecordedAnswer { recorded }))
    }

    async fn issue_or_wait(&self, request: &SignRequest, caller: &Caller) -> Result<Answer, IssueError> {
        check_syntax(request)?;
        if request.verdict.is_some() {
            return Err(IssueError::InvalidRequest("a verdict certifies no key: send it as a verdict (`sshca approve`)".into()));
        }
        self.record_pending_voids().await;
        let policy = self.environment.policy(&request.environment).instrument(debug_span!("issue.policy")).await?;
        // Input that is wrong whoever sends it is refused before STS is asked who sent it.
        let given_key = request.public_key.as_deref().map(parse_public_key).transpose()?;
        if let Some(key) = &given_key {
            policy.check_public_key(key)?;
        }
        let now = unix_now();
        let requester = self.requester(&policy, request, now).instrument(debug_span!("issue.identity")).await?;
        let requester = self.with_facts(&policy, requester).await?;
        let decision = decide::decide(&policy, &requester, request, now)?;
        let request = &decision.request;
        let mut plan = decision.plan.clone();
        let public_key = match given_key {
            Some(key) => key,
            None => {
                self.cached_public_key(&request.environment, request.cert_type, &request.username)
                    .instrument(debug_span!("issue.cached_key"))
                    .await?
            }
        };
        decision.check_public_key(&policy, &public_key)?;
        self.refuse_revoked(&request.environment, &public_key).instrument(debug_span!("issue.revoked_keys")).await?;
        let proven = match &requester {
            Requester::Proven(identity) => Some(identity),
            Requester::Unproven => None,
        };
        let rule = decision.rule.and_then(|index| policy.access.rules.get(index));
        let audit_store = self.environment.audit_store().as_ref();
        let gate = approval::gate(audit_store, rule, proven, request, &mut plan, &public_key, &caller.request_id, now)
            .instrument(debug_span!("issue.approval"))
            .await?;
        if let Gate::Wait(access_request) = &gate {
            info!(request = %access_request.id, requester = %access_request.requester, "access request recorded");
            self.environment.notify(&approval::requested(access_request)).await;
            let pending = Pending {
                request_id: access_request.id.clone(),
                digest: access_request.digest(),
                requester: access_request.requester.clone(),
                approvers: access_request.approval.by.clone(),
                count: access_request.approval.count,
                expires_at: access_request.expires_at,
                approve_command: access_request.approve_command(),
            };
            return Ok(Answer::Pending(PendingAnswer { pending }));
        }
        let plan = &plan;
        let ca = self
            .environment
            .ca_keys()
            .load(&request.environment, request.cert_type, policy.ca(request.cert_type)?)
            .instrument(debug_span!("issue.ca_key"))
            .await?;
        self.conditions_honoured
            .get_or_try_init(|| async {
                refuse_ignored_conditions(self.environment.store().as_ref(), layout::conditional_create_probe(false)).await?;
                refuse_ignored_conditions(self.environment.audit_store().as_ref(), layout::conditional_create_probe(true)).await
            })
            .await?;
        let serial = self
            .serials
            .next(self.environment.store().as_ref(), self.environment.audit_store().as_ref(), &request.environment, &caller.request_id)
            .instrument(debug_span!("issue.serial"))
            .await?;
        let key_id = format!("{}#{serial}", request.username);
        let mut entry = AuditEntry {
            event: Event::Issued,
            environment: request.environment.clone(),
            serial,
            key_id: key_id.clone(),
            username: request.username.clone(),
            requested_by: request.requested_by.clone(),
            caller_identity: proven.map(|identity| identity.name.clone()),
            caller_user_id: proven.map(|identity| identity.subject.clone()),
            groups: decision.groups.clone(),
            proven: proven.is_some(),
            access: decision.access.to_owned(),
            reason: request.reason.clone(),
            principals: plan.principals.clone(),
            cert_type: request.cert_type.as_str().to_owned(),
            valid_after: plan.valid_after,
            valid_before: plan.valid_before,
            public_key_fingerprint: public_key.fingerprint(HashAlg::Sha256).to_string(),
            ca_fingerprint: ca.public_key().fingerprint(HashAlg::Sha256).to_string(),
            request_id: caller.request_id.clone(),
            timestamp: String::new(),
            certificate: None,
            error: None,
            access_request: match &gate {
                Gate::Claimed { request, .. } => Some(request.id.clone()),
                _ => None,
            },
            approvers: match &gate {
                Gate::Claimed { approvers, .. } => approvers.clone(),
                _ => Vec::new(),
            },
            break_glass: matches!(gate, Gate::BreakGlass),
        };
        let issued = self.sign_and_record(ca, &public_key, request.cert_type, plan, &mut entry);
        let cache_key = async {
            if request.public_key.is_none() {
                return Ok(());
            }
            self.store_public_key(Some(&request.environment), request.cert_type, &request.username, &public_key).await
        };
        let (issued, cached) = tokio::join!(issued, cache_key);
        if let Err(err) = cached {
            // The certificate stands; only a later request that leaves out its key is affected.
            warn!(serial, error = %err, "the public key could not be cached");
        }
        match issued {
            Ok((certificate, download_url)) => {
                let expires_in = Duration::from_secs(plan.url_expires_at.saturating_sub(unix_now()).max(1));
                // presigning is local: a failure here only costs the client its KRL refresh
                let krl_url = self
                    .environment
                    .store()
                    .presign_get(&layout::krl(&request.environment), expires_in)
                    .instrument(debug_span!("issue.presign"))
                    .await
                    .ok();
                info!(
                    serial,
                    key_id = %key_id,
                    environment = %request.environment,
                    caller = requester.name().unwrap_or("unproven"),
                    access = decision.access,
                    outcome = "issued",
                    "certificate issued"
                );
                if let Some(notice) = approval::issued(&gate, &entry) {
                    self.environment.notify(&notice).await;
                }
                Ok(Answer::Issued(SignResponse {
                    serial,
                    key_id,
                    certificate,
                    download_url,
                    url_expires_at: plan.url_expires_at,
                    valid_after: plan.valid_after,
                    valid_before: plan.valid_before,
                    ca_fingerprint: entry.ca_fingerprint,
                    public_key_fingerprint: entry.public_key_fingerprint,
                    caller: entry.caller_identity,
                    krl_url,
                }))
            }
            Err(err) => {
                self.void(entry, &err).await;
                Err(err)
            }
        }
    }

    /// Who asks: the identity STS answers for the request's proof, or unproven where the
    /// environment allows it.
    async fn requester(&self, policy: &Policy, request: &SignRequest, now: u64) -> Result<Requester, IssueError> {
        let Some(proof) = &request.identity else {
            if policy.access.allow_unproven {
                return Ok(Requester::Unproven);
            }
            return Err(IssueError::AccessDenied(format!(
                "environment {:?} requires a proof of identity, and the request has none: ask with `get_key request` or `sshca sign`, which sign one with your AWS credentials",
                policy.environment
            )));
        };
        let hash = request_hash(request);
        let binding = Binding { audience: &policy.access.audience, request_hash: &hash, now, clock_skew: policy.clock_skew_seconds };
        Ok(Requester::Proven(self.environment.providers().prove(proof, &binding).await?))
    }

    /// The requester with what its rule needs to know beyond the proof: its directory groups where
    /// the rule maps groups (this container's copy of at most `groups_ttl_seconds`, else read from
    /// its provider's directory), and its instance's names where a host rule takes them from the
    /// instance (read now: hosts renew seldom).
    async fn with_facts(&self, policy: &Policy, requester: Requester) -> Result<Requester, IssueError> {
        let Requester::Proven(mut identity) = requester else { return Ok(requester) };
        let Some((_, rule)) = policy.access.rule_for(&identity) else { return Ok(Requester::Proven(identity)) };
        if !rule.groups.is_empty() {
            identity.groups = Some(self.groups_of(policy, &identity).instrument(debug_span!("issue.groups")).await?.to_vec());
        }
        if let Some(from) = &rule.from_instance {
            let names =
                self.environment.providers().instance_names(&identity, rule, from).instrument(debug_span!("issue.instance")).await?;
            identity.instance_names = Some(names);
        }
        Ok(Requester::Proven(identity))
    }

    async fn groups_of(&self, policy: &Policy, identity: &Identity) -> Result<Arc<Vec<String>>, IssueError> {
        let key = format!("{}\n{}\n{}", policy.environment, identity.provider, identity.subject);
        if let Some(groups) = self.groups.get_within(&key, Duration::from_secs(policy.access.groups_ttl_seconds)) {
            return Ok(groups);
        }
        let mut groups = self.environment.providers().groups(identity, &policy.access).await?;
        groups.sort();
        groups.dedup();
        let groups = Arc::new(groups);
        self.groups.insert(key, groups.clone());
        Ok(groups)
    }

    /// Refuses a key revoked with `sshca revoke --public-key`.
    async fn refuse_revoked(&self, environment: &str, key: &PublicKey) -> Result<(), IssueError> {
        let revoked = match self.revoked_keys.get(environment) {
            Some(revoked) => revoked,
            None => {
                let revoked = Arc::new(
                    revocation_log::revoked_keys(self.environment.store().as_ref(), self.environment.audit_store().as_ref(), environment)
                        .await?,
                );
                self.revoked_keys.insert(environment.to_owned(), revoked.clone());
                revoked
            }
        };
        if revoked.contains(&revocation_log::bare_key_line(key.key_data())?) {
            return Err(IssueError::PolicyViolation(format!(
                "the key {} is revoked in environment {environment:?}: make a new key (ssh-keygen -t ed25519) and ask again",
                key.fingerprint(HashAlg::Sha256)
            )));
        }
        Ok(())
    }

    async fn sign_and_record(
        &self,
        ca: Arc<dyn Signer>,
        subject: &PublicKey,
        kind: CertKind,
        plan: &Plan,
        entry: &mut AuditEntry,
    ) -> Result<(String, String), IssueError> {
        let certificate =
            sign_certificate(ca.as_ref(), subject, kind, plan, entry.serial, &entry.key_id).instrument(debug_span!("issue.sign")).await?;
        // A re-pointed key alias or a faulty signer must give an error, never a certificate that
        // servers refuse (or that another key signed).
        if certificate.signature_key() != ca.public_key() || certificate.verify_signature().is_err() {
            return Err(IssueError::Unavailable(format!(
                "the CA's signature does not verify against its public key {} (a re-pointed KMS key alias or a KMS fault): nothing was handed out",
                ca.public_key().fingerprint(HashAlg::Sha256)
            )));
        }
        let line = certificate.to_openssh().map_err(|err| IssueError::Unavailable(err.to_string()))?;
        let now = OffsetDateTime::now_utc();
        entry.timestamp = now.format(&Rfc3339).expect("UTC times format");
        entry.certificate = Some(line.clone());
        // The two writes do not depend on each other; what matters is that both are durable before
        // the URL exists. If the audit write fails, the certificate object may exist, but no URL to
        // it is handed out and the void record carries the certificate.
        let object = layout::certificate(&entry.environment, &entry.username, entry.serial);
        let (audited, stored) = async {
            tokio::join!(
                audit::record(self.environment.audit_store().as_ref(), entry, now),
                put_once(self.environment.store().as_ref(), &object, format!("{line}\n").into_bytes()),
            )
        }
        .instrument(debug_span!("issue.record"))
        .await;
        audited?;
        stored?;
        let expires_in = Duration::from_secs(plan.url_expires_at.saturating_sub(unix_now()).max(1));
        let url = self.environment.store().presign_get(&object, expires_in).instrument(debug_span!("issue.presign")).await?;
        Ok((line, url))
    }

    /// Records that `entry.serial` was not handed out. When even this write fails, the error is
    /// logged with everything the record would have held, and the record is kept to be written by
    /// a later request.
    async fn void(&self, mut entry: AuditEntry, cause: &IssueError) {
        let now = OffsetDateTime::now_utc();
        entry.event = Event::Void;
        entry.timestamp = now.format(&Rfc3339).expect("UTC times format");
        entry.error = Some(cause.to_string());
        match audit::record(self.environment.audit_store().as_ref(), &entry, now).await {
            Ok(_) => info!(serial = entry.serial, outcome = "void", error = %cause, "serial voided"),
            Err(err) => {
                error!(
                    serial = entry.serial,
                    environment = %entry.environment,
                    key_id = %entry.key_id,
                    outcome = "void-pending",
                    error = %cause,
                    record_error = %err,
                    "serial taken but neither a certificate nor a void record could be written; the void record will be retried"
                );
                self.lock_pending_voids().push((entry, now));
            }
        }
    }

    async fn record_pending_voids(&self) {
        let pending = std::mem::take(&mut *self.lock_pending_voids());
        for (entry, voided_at) in pending {
            match audit::record(self.environment.audit_store().as_ref(), &entry, voided_at).await {
                Ok(_) => info!(serial = entry.serial, outcome = "void", "void record written late"),
                Err(_) => self.lock_pending_voids().push((entry, voided_at)),
            }
        }
    }

    fn lock_pending_voids(&self) -> std::sync::MutexGuard<'_, Vec<(AuditEntry, OffsetDateTime)>> {
        self.pending_voids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached key of the user (or host) in this environment, else a user's key kept for all
    /// environments.
    async fn cached_public_key(&self, environment: &str, kind: CertKind, username: &str) -> Result<PublicKey, IssueError> {
        let scopes = match kind {
            CertKind::User => &[Some(environment), None][..],
            CertKind::Host => &[Some(environment)][..],
        };
        for &scope in scopes {
            let object = layout::cached_public_key(scope, kind, username);
            if let Some(cached) = self.environment.store().get(&object).await? {
                let text = String::from_utf8_lossy(&cached.body);
                return parse_public_key(&text).map_err(|err| {
                    IssueError::InvalidPublicKey(format!("the cached key {object} is unusable ({err}): upload a new one with -p"))
                });
            }
        }
        Err(IssueError::NoCachedKey { user: username.to_owned(), environment: environment.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use rand::rngs::OsRng;
    use ssh_key::public::KeyData;
    use ssh_key::{Algorithm, Certificate, PrivateKey, Signature};

    use super::*;
    use crate::access::{AccessRule, Grant};
    use crate::ca::{CaKeys, LocalSigner};
    use crate::error::CaError;
    use crate::identity::Proof;
    use crate::policy::CaKeyRef;
    use crate::store::memory::MemoryStore;
    use crate::store::Store;
    use crate::testing;

    /// CA keys generated in memory; `fail` makes signing fail like an unreachable KMS, and
    /// `impostor` signs with another key than the CA's (a re-pointed KMS alias).
    struct TestKeys {
        key: Arc<LocalSigner>,
        fail: AtomicBool,
        impostor: AtomicBool,
    }

    struct Impostor {
        claimed: KeyData,
        signer: LocalSigner,
    }

    #[async_trait]
    impl Signer for Impostor {
        fn public_key(&self) -> &KeyData {
            &self.claimed
        }
        async fn sign(&self, message: &[u8]) -> Result<Signature, CaError> {
            self.signer.sign(message).await
        }
    }

    struct FailingSigner(KeyData);

    #[async_trait]
    impl Signer for FailingSigner {
        fn public_key(&self) -> &KeyData {
            &self.0
        }
        async fn sign(&self, _: &[u8]) -> Result<Signature, CaError> {
            Err(CaError::Kms("connection refused".into()))
        }
    }

    #[async_trait]
    impl CaKeys for TestKeys {
        async fn load(&self, _: &str, _: CertKind, _: &CaKeyRef) -> Result<Arc<dyn Signer>, CaError> {
            if self.fail.load(Ordering::SeqCst) {
                return Ok(Arc::new(FailingSigner(self.key.public_key().clone())));
            }
            if self.impostor.load(Ordering::SeqCst) {
                let other = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
                return Ok(Arc::new(Impostor { claimed: self.key.public_key().clone(), signer: LocalSigner::new(other) }));
            }
            Ok(self.key.clone())
        }
    }

    /// An environment that serves unproven requests (as most of these tests send).
    async fn setup() -> (Arc<MemoryStore>, Arc<TestKeys>, Issuer) {
        setup_with(true).await
    }

    /// `allow_unproven`, or else a user rule for IAM users of account 111111111111.
    async fn setup_with(allow_unproven: bool) -> (Arc<MemoryStore>, Arc<TestKeys>, Issuer) {
        let store = Arc::new(MemoryStore::default());
        let mut policy = Policy::new("staging");
        policy.user_ca = Some(CaKeyRef::Kms { key_id: "test".into() });
        policy.default_principals = vec!["deploy".into()];
        policy.allowed_principals = vec!["deploy".into(), "alice".into()];
        policy.access.audience = "sshca:test:staging".into();
        policy.access.allow_unproven = allow_unproven;
        if !allow_unproven {
            policy.access.rules =
                vec![AccessRule { principals: vec!["{user}".into()], ..AccessRule::new("arn:aws:iam::111111111111:user/*", Grant::User) }];
        }
        store.put(&layout::policy("staging"), serde_json::to_vec(&policy).unwrap(), Condition::Always).await.unwrap();
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let keys =
            Arc::new(TestKeys { key: Arc::new(LocalSigner::new(key)), fail: AtomicBool::new(false), impostor: AtomicBool::new(false) });
        let alice = testing::aws_identity("arn:aws:iam::111111111111:user/alice");
        let issuer = Issuer::new(Environment::new(store.clone(), store.clone(), keys.clone(), testing::proving(alice)));
        (store, keys, issuer)
    }

    /// A proof alice made for `request`.
    fn prove(request: &SignRequest) -> Proof {
        testing::proof(request, "sshca:test:staging")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_proven_user_gets_its_own_certificate_and_the_record_names_the_proven_arn() {
        let (store, _, issuer) = setup_with(false).await;
        let mut asked =
            SignRequest { username: String::new(), requested_by: Some("the CEO".into()), nonce: Some("n1".into()), ..request(&user_key()) };
        asked.identity = Some(prove(&asked));
        let response = issuer.issue(&asked, &Caller::default()).await.unwrap();
        assert_eq!(response.key_id, "alice#1");
        assert_eq!(response.caller.as_deref(), Some("arn:aws:iam::111111111111:user/alice"));
        let record = store.keys().into_iter().find(|k| k.ends_with("-issued.json")).unwrap();
        let entry: AuditEntry = serde_json::from_slice(&store.get(&record).await.unwrap().unwrap().body).unwrap();
        assert_eq!(entry.caller_identity.as_deref(), Some("arn:aws:iam::111111111111:user/alice"));
        assert!(entry.proven);
        assert_eq!(entry.access, "user");
        assert_eq!(entry.requested_by.as_deref(), Some("the CEO"));
        // the proof is bound to this request: changing any field afterwards voids it
        let mut changed = asked.clone();
        changed.ttl = Some(600);
        let err = issuer.issue(&changed, &Caller::default()).await.unwrap_err();
        assert!(err.to_string().contains("bound to another request"), "{err}");
    }

    fn request(public_key: &str) -> SignRequest {
        SignRequest {
            environment: "staging".into(),
            username: "jane@example.com".into(),
            public_key: Some(public_key.into()),
            reason: "unit test".into(),
            ..Default::default()
        }
    }

    fn user_key() -> String {
        PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap().public_key().to_openssh().unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn issues_a_verifiable_certificate_with_audit_and_cached_key() {
        let (store, keys, issuer) = setup().await;
        let response = issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap();
        assert_eq!(response.serial, 1);
        assert_eq!(response.key_id, "jane@example.com#1");
        let certificate = Certificate::from_openssh(&response.certificate).unwrap();
        let ca_fingerprint = keys.key.public_key().fingerprint(HashAlg::Sha256);
        certificate.validate([&ca_fingerprint]).unwrap();
        assert_eq!(certificate.valid_principals(), ["deploy"]);
        let objects = store.keys();
        assert!(objects.iter().any(|k| k.starts_with("audit/staging/") && k.ends_with("00000000000000000001-issued.json")), "{objects:?}");
        assert!(objects.contains(&"certs/staging/jane@example.com/00000000000000000001-cert.pub".to_owned()));
        assert!(objects.contains(&"keys/staging/jane@example.com.pub".to_owned()));
        assert_eq!(response.public_key_fingerprint, certificate.public_key().fingerprint(HashAlg::Sha256).to_string());
        // the cached key serves the next request
        let again = issuer.issue(&SignRequest { public_key: None, ..request("") }, &Caller::default()).await.unwrap();
        assert_eq!(again.serial, 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_signature_voids_the_serial_and_writes_no_certificate() {
        let (store, keys, issuer) = setup().await;
        keys.fail.store(true, Ordering::SeqCst);
        let err = issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap_err();
        assert_eq!(err.error_type(), "Unavailable", "{err}");
        let objects = store.keys();
        assert!(objects.iter().any(|k| k.ends_with("00000000000000000001-void.json")), "{objects:?}");
        assert!(!objects.iter().any(|k| k.starts_with("certs/")), "{objects:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_signature_by_another_key_is_never_handed_out() {
        let (store, keys, issuer) = setup().await;
        keys.impostor.store(true, Ordering::SeqCst);
        let err = issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap_err();
        assert_eq!(err.error_type(), "Unavailable", "{err}");
        let objects = store.keys();
        assert!(objects.iter().any(|k| k.ends_with("00000000000000000001-void.json")), "{objects:?}");
        assert!(!objects.iter().any(|k| k.starts_with("certs/") || k.ends_with("-issued.json")), "{objects:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_planted_record_at_the_next_serial_is_not_taken_for_ours() {
        let (store, _, issuer) = setup().await;
        let today = OffsetDateTime::now_utc();
        let date = (today.year(), u8::from(today.month()), today.day());
        for event in ["issued", "void"] {
            store.put(&layout::audit_entry("staging", date, 1, event), b"planted".to_vec(), Condition::IfAbsent).await.unwrap();
        }
        let err = issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap_err();
        assert!(err.to_string().contains("already holds something this write did not put there"), "{err}");
        let objects = store.keys();
        let own_void = objects.iter().find(|k| k.contains("00000000000000000001-void-")).expect("the void record under its own name");
        let void: AuditEntry = serde_json::from_slice(&store.get(own_void).await.unwrap().unwrap().body).unwrap();
        assert_eq!((void.event, void.serial), (Event::Void, 1));
        // the next serial is issued as usual
        assert_eq!(issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap().serial, 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn junk_under_the_revocations_costs_issuance_nothing() {
        let (store, _, issuer) = setup().await;
        for n in 0..5000u64 {
            store.put(&layout::revocation("staging", n + 1), b"junk".to_vec(), Condition::IfAbsent).await.unwrap();
        }
        let err = issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap_err();
        assert!(err.to_string().contains("sshca krl staging --publish"), "no KRL yet, and too large a log to read here: {err}");
        crate::revoke::publish_empty_krl(store.as_ref(), "staging").await.unwrap();
        let before = store.gets();
        assert_eq!(issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap().serial, 1);
        assert!(store.gets() - before < 10, "{} GETs for one issuance", store.gets() - before);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_void_record_that_cannot_be_written_is_written_by_the_next_request() {
        let (store, keys, _) = setup().await;
        let audit = Arc::new(MemoryStore::default());
        let alice = testing::aws_identity("arn:aws:iam::111111111111:user/alice");
        let issuer =
            Issuer::new(Environment::new(store.clone(), audit.clone(), keys.clone(), testing::proving(alice))).with_serial_block(8, "test");
        issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap();
        audit.fail_writes(true);
        let err = issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap_err();
        assert!(err.to_string().contains("audit record could not be written"), "{err}");
        audit.fail_writes(false);
        assert!(!audit.keys().iter().any(|k| k.ends_with("-void.json")));
        let next = issuer.issue(&request(&user_key()), &Caller::default()).await.unwrap();
        assert_eq!(next.serial, 3);
        let records = audit.keys();
        assert!(records.iter().any(|k| k.ends_with("00000000000000000002-void.json")), "{records:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bad_input_burns_no_serial() {
        let (store, _, issuer) = setup().await;
        let bad = [
            SignRequest { username: "../x".into(), ..request(&user_key()) },
            SignRequest { reason: String::new(), ..request(&user_key()) },
            SignRequest { principals: Some(vec!["root".into()]), ..request(&user_key()) },
            SignRequest { environment: "nope".into(), ..request(&user_key()) },
            request("ssh-ed25519 AAAAgarbage"),
            request(include_str!("../testdata/rsa1024.pub")),
        ];
        for case in bad {
            assert!(issuer.issue(&case, &Caller::default()).await.is_err(), "{case:?} accepted");
        }
        assert_eq!(store.keys(), [layout::policy("staging")], "bad input wrote something");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_policy_stored_for_another_environment_is_refused() {
        let (store, _, issuer) = setup().await;
        let stored = store.get(&layout::policy("staging")).await.unwrap().unwrap().body;
        store.put(&layout::policy("prod"), stored, Condition::Always).await.unwrap();
        let err = issuer.issue(&SignRequest { environment: "prod".into(), ..request(&user_key()) }, &Caller::default()).await.unwrap_err();
        assert_eq!(err.error_type(), "Configuration");
        assert!(err.to_string().contains("holds the policy of environment \"staging\", not \"prod\""), "{err}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn host_keys_are_cached_apart_from_users_keys() {
        let (store, _, issuer) = setup().await;
        let mut policy: Policy = serde_json::from_slice(&store.get(&layout::policy("staging")).await.unwrap().unwrap().body).unwrap();
        policy.host_ca = Some(CaKeyRef::Kms { key_id: "host".into() });
        policy.allowed_host_principals = vec!["*.example.com".into()];
        store.put(&layout::policy("staging"), serde_json::to_vec(&policy).unwrap(), Condition::Always).await.unwrap();
        let host = SignRequest {
            username: "jane@example.com".into(),
            cert_type: CertKind::Host,
            principals: Some(vec!["web.example.com".into()]),
            ..request(&user_key())
        };
        let response = issuer.issue(&host, &Caller::default()).await.unwrap();
        assert_eq!(response.valid_before - response.valid_after, policy.host_default_ttl + policy.backdate_seconds);
        let keys = store.keys();
        assert!(keys.contains(&"host-keys/staging/jane@example.com.pub".to_owned()), "{keys:?}");
        assert!(!keys.iter().any(|k| k.starts_with("keys/")), "a host's key landed among users' keys: {keys:?}");
    }

    #[test]
    fn public_key_mistakes_are_named() {
        let cert_line = "ssh-ed25519-cert-v01@openssh.com AAAA";
        assert!(parse_public_key(cert_line).unwrap_err().to_string().contains("certificate"));
        assert!(parse_public_key("-----BEGIN OPENSSH PRIVATE KEY-----").unwrap_err().to_string().contains("private key"));
        let two_lines = format!("{}\n{}", user_key(), user_key());
        assert!(parse_public_key(&two_lines).unwrap_err().to_string().contains("several lines"));
    }
}

//! OpenSSH Key Revocation Lists (`PROTOCOL.krl`), the binary format sshd's `RevokedKeys` and
//! `ssh-keygen -Q` read. Written by hand: no maintained Rust crate produces KRLs, and sshca needs
//! only three section kinds (certificate serials and key ids per CA, and explicit keys).

use std::collections::BTreeSet;

use ssh_encoding::{Decode, Encode};
use ssh_key::public::KeyData;

const MAGIC: &[u8; 8] = b"SSHKRL\n\0";
const FORMAT_VERSION: u32 = 1;
const SECTION_CERTIFICATES: u8 = 1;
const SECTION_EXPLICIT_KEY: u8 = 2;
const CERT_SERIAL_LIST: u8 = 0x20;
const CERT_KEY_ID: u8 = 0x23;

/// What a KRL revokes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Revoked<'a> {
    /// Certificate serials, revoked under each of `cas`.
    pub serials: Vec<u64>,
    /// Certificate key ids, revoked under each of `cas`.
    pub key_ids: Vec<&'a str>,
    /// The CA keys the serials and key ids are scoped to.
    pub cas: Vec<&'a KeyData>,
    /// Keys revoked outright (any certificate of theirs too).
    pub keys: Vec<&'a KeyData>,
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// The SSH wire blob of a key, as KRLs name CA keys and revoked keys.
pub fn blob(key: &KeyData) -> Vec<u8> {
    let mut blob = Vec::new();
    key.encode(&mut blob).expect("encoding a public key into memory cannot fail");
    blob
}

/// Encodes a KRL. Serials are sorted and de-duplicated (serial 0 is not revocable by serial);
/// key ids are sorted, so the same input always gives the same bytes.
pub fn encode(revoked: &Revoked<'_>, krl_version: u64, generated_at: u64, comment: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    put_u64(&mut out, krl_version);
    put_u64(&mut out, generated_at);
    put_u64(&mut out, 0); // flags
    put_string(&mut out, b""); // reserved
    put_string(&mut out, comment.as_bytes());

    let mut serials: Vec<u64> = revoked.serials.iter().copied().filter(|s| *s != 0).collect();
    serials.sort_unstable();
    serials.dedup();
    let mut key_ids = revoked.key_ids.clone();
    key_ids.sort_unstable();
    key_ids.dedup();
    if !serials.is_empty() || !key_ids.is_empty() {
        for ca in &revoked.cas {
            let mut section = Vec::new();
            put_string(&mut section, &blob(ca));
            put_string(&mut section, b""); // reserved
            if !serials.is_empty() {
                let mut list = Vec::with_capacity(serials.len() * 8);
                serials.iter().for_each(|s| put_u64(&mut list, *s));
                section.push(CERT_SERIAL_LIST);
                put_string(&mut section, &list);
            }
            if !key_ids.is_empty() {
                let mut ids = Vec::new();
                key_ids.iter().for_each(|id| put_string(&mut ids, id.as_bytes()));
                section.push(CERT_KEY_ID);
                put_string(&mut section, &ids);
            }
            out.push(SECTION_CERTIFICATES);
            put_string(&mut out, &section);
        }
    }
    if !revoked.keys.is_empty() {
        let mut blobs: Vec<Vec<u8>> = revoked.keys.iter().map(|k| blob(k)).collect();
        blobs.sort();
        blobs.dedup();
        let mut section = Vec::new();
        blobs.iter().for_each(|blob| put_string(&mut section, blob));
        out.push(SECTION_EXPLICIT_KEY);
        put_string(&mut out, &section);
    }
    out
}

/// The `krl_version` of an encoded KRL, if it is one.
pub fn version_of(krl: &[u8]) -> Option<u64> {
    if krl.len() < 20 || &krl[..8] != MAGIC {
        return None;
    }
    Some(u64::from_be_bytes(krl[12..20].try_into().ok()?))
}

/// What a KRL says about itself and how much it revokes, for a server's health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub version: u64,
    /// Unix seconds.
    pub generated_at: u64,
    /// Certificates (serials, serial ranges, key ids) and keys (explicit, by hash) it revokes.
    pub revoked: u64,
}

/// One thing a KRL revokes, as [`walk`] finds it. CA keys and revoked keys are their SSH wire blobs.
enum Item<'a> {
    Serial { ca: &'a [u8], serial: u64 },
    SerialRange { low: u64, high: u64 },
    SerialBitmap { bits: u64 },
    KeyId { ca: &'a [u8], id: &'a [u8] },
    ExplicitKey(&'a [u8]),
    KeyHash,
}

/// Reads any KRL OpenSSH writes (every section and subsection kind of `PROTOCOL.krl`), handing
/// each revoked item to `visit`; returns the header's version and time.
fn walk<'a>(krl: &'a [u8], mut visit: impl FnMut(Item<'a>) -> Result<(), String>) -> Result<(u64, u64), String> {
    let mut reader = Reader(krl);
    if reader.take(8)? != MAGIC {
        return Err("it does not start with SSHKRL (not an OpenSSH KRL)".into());
    }
    if reader.u32()? != FORMAT_VERSION {
        return Err("its format version is not 1".into());
    }
    let version = reader.u64()?;
    let generated_at = reader.u64()?;
    reader.u64()?; // flags
    reader.string()?; // reserved
    reader.string()?; // comment
    while !reader.0.is_empty() {
        let kind = reader.take(1)?[0];
        let mut section = Reader(reader.string()?);
        match kind {
            SECTION_CERTIFICATES => {
                let ca = section.string()?;
                section.string()?; // reserved
                while !section.0.is_empty() {
                    let sub = section.take(1)?[0];
                    let mut body = Reader(section.string()?);
                    match sub {
                        CERT_SERIAL_LIST => {
                            while !body.0.is_empty() {
                                visit(Item::Serial { ca, serial: body.u64()? })?;
                            }
                        }
                        0x21 => {
                            while !body.0.is_empty() {
                                visit(Item::SerialRange { low: body.u64()?, high: body.u64()? })?;
                            }
                        }
                        0x22 => {
                            body.u64()?;
                            visit(Item::SerialBitmap { bits: body.string()?.iter().map(|byte| u64::from(byte.count_ones())).sum() })?;
                        }
                        CERT_KEY_ID => {
                            while !body.0.is_empty() {
                                visit(Item::KeyId { ca, id: body.string()? })?;
                            }
                        }
                        other => return Err(format!("it has an unknown certificate subsection {other:#x}")),
                    }
                }
            }
            SECTION_EXPLICIT_KEY => {
                while !section.0.is_empty() {
                    visit(Item::ExplicitKey(section.string()?))?;
                }
            }
            3 | 5 => {
                while !section.0.is_empty() {
                    section.string()?;
                    visit(Item::KeyHash)?;
                }
            }
            4 => {} // signatures
            other => return Err(format!("it has an unknown section {other}")),
        }
    }
    Ok((version, generated_at))
}

/// Reads any KRL OpenSSH writes, or says why it is not one.
pub fn summarize(krl: &[u8]) -> Result<Summary, String> {
    let mut revoked = 0u64;
    let (version, generated_at) = walk(krl, |item| {
        revoked = revoked.saturating_add(match item {
            Item::SerialRange { low, high } => high.saturating_sub(low).saturating_add(1),
            Item::SerialBitmap { bits } => bits,
            _ => 1,
        });
        Ok(())
    })?;
    Ok(Summary { version, generated_at, revoked })
}

/// What a KRL of the kind sshca publishes revokes, read back: serials and key ids under each CA
/// key, and keys revoked outright (all as SSH wire blobs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Contents {
    pub generated_at: u64,
    pub serials: BTreeSet<(Vec<u8>, u64)>,
    pub key_ids: BTreeSet<(Vec<u8>, String)>,
    pub keys: BTreeSet<Vec<u8>>,
}

impl Contents {
    /// How many of this KRL's revocations `other` does not make: what replacing this KRL with
    /// `other` would un-revoke.
    pub fn not_in(&self, other: &Contents) -> usize {
        self.serials.difference(&other.serials).count()
            + self.key_ids.difference(&other.key_ids).count()
            + self.keys.difference(&other.keys).count()
    }

    /// What it revokes under `cas` (wire blobs), and the keys it revokes outright that are keys:
    /// what a later KRL of the same CA must revoke too (sshca drops what it cannot use).
    pub fn scoped_to(&self, cas: &[Vec<u8>]) -> Contents {
        let trusted = |ca: &Vec<u8>| cas.contains(ca);
        Contents {
            generated_at: self.generated_at,
            serials: self.serials.iter().filter(|(ca, _)| trusted(ca)).cloned().collect(),
            key_ids: self.key_ids.iter().filter(|(ca, _)| trusted(ca)).cloned().collect(),
            keys: self.keys.iter().filter(|blob| KeyData::decode(&mut blob.as_slice()).is_ok()).cloned().collect(),
        }
    }

    /// The keys it revokes outright, those of them that are keys (a blob that is not is dropped).
    pub fn revoked_keys(&self) -> impl Iterator<Item = KeyData> + '_ {
        self.keys.iter().filter_map(|blob| KeyData::decode(&mut blob.as_slice()).ok())
    }

    /// The CA keys it scopes serials and key ids to.
    pub fn cas(&self) -> BTreeSet<&[u8]> {
        self.serials.iter().map(|(ca, _)| ca.as_slice()).chain(self.key_ids.iter().map(|(ca, _)| ca.as_slice())).collect()
    }
}

/// Reads a KRL made of the sections sshca writes (serial lists and key ids per CA, explicit
/// keys); anything else (ranges, bitmaps, hashes) is refused, since it cannot be compared item by
/// item with what sshca publishes.
pub fn decode(krl: &[u8]) -> Result<Contents, String> {
    let mut contents = Contents::default();
    let (_, generated_at) = walk(krl, |item| {
        match item {
            Item::Serial { ca, serial } => contents.serials.insert((ca.to_vec(), serial)),
            Item::KeyId { ca, id } => contents.key_ids.insert((ca.to_vec(), String::from_utf8_lossy(id).into_owned())),
            Item::ExplicitKey(blob) => contents.keys.insert(blob.to_vec()),
            Item::SerialRange { .. } | Item::SerialBitmap { .. } | Item::KeyHash => {
                return Err("it revokes by serial range, bitmap or key hash, which sshca never publishes".into())
            }
        };
        Ok(())
    })?;
    contents.generated_at = generated_at;
    Ok(contents)
}

/// Whether `new` may replace the KRL a server has installed (`installed`, if any): it must be a
/// KRL of the kind sshca publishes, scoped to at least one of `cas` (wire blobs) if it scopes
/// anything, and revoke everything the installed one does under `cas` (and every key it revokes
/// outright) unless `allow_shrink`: a retired CA's revocations may go. A planted or
/// truncated object at the KRL's key would otherwise un-revoke on every server at its next refresh.
pub fn check_replacement(new: &[u8], installed: Option<&[u8]>, cas: &[Vec<u8>], allow_shrink: bool) -> Result<(), String> {
    let contents = decode(new).map_err(|why| format!("the published KRL is not one sshca publishes: {why}"))?;
    let scoped = contents.cas();
    if !scoped.is_empty() && !scoped.iter().any(|ca| cas.iter().any(|trusted| trusted.as_slice() == *ca)) {
        return Err("the published KRL revokes certificates of CA keys this environment does not have (another environment's KRL?)".into());
    }
    let Some(installed) = installed else { return Ok(()) };
    let installed = match decode(installed) {
        Ok(installed) => installed,
        Err(_) if allow_shrink => return Ok(()),
        Err(why) => return Err(format!("the installed KRL is not one sshca publishes ({why}), so what replacing it would un-revoke cannot be told: pass --allow-shrink to replace it")),
    };
    let lost = installed.scoped_to(cas).not_in(&contents);
    if lost > 0 && !allow_shrink {
        return Err(format!(
            "it revokes {lost} certificate(s) or key(s) fewer than the installed KRL: someone may be un-revoking access; check `sshca verify` and, if the change is intended, pass --allow-shrink"
        ));
    }
    Ok(())
}

/// What a user's machine installs for ssh's `RevokedHostKeys` when `new` is published over its
/// `installed` KRL: `new` as it is where it revokes everything `installed` does, else both
/// together, so that a planted or truncated KRL un-revokes no host there. (A client has no list of
/// the host CA keys to scope a check to, as a server has; and refusing the new KRL would also keep
/// out what it newly revokes.) Together, every serial and key id is revoked under every CA of
/// either: an environment's serials come from one counter for all its CAs, so nothing is revoked
/// that was not. Returns the KRL to install and how many revocations `new` dropped.
pub fn keeping_revocations(installed: &[u8], new: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let published = decode(new)?;
    // a KRL sshca did not write (made by hand) has nothing sshca can carry over
    let Ok(old) = decode(installed) else { return Ok((new.to_vec(), 0)) };
    let dropped = old.not_in(&published);
    if dropped == 0 {
        return Ok((new.to_vec(), 0));
    }
    let keys_of =
        |blobs: BTreeSet<&Vec<u8>>| -> Vec<KeyData> { blobs.into_iter().filter_map(|b| KeyData::decode(&mut b.as_slice()).ok()).collect() };
    let cas = keys_of(
        old.serials
            .iter()
            .chain(&published.serials)
            .map(|(ca, _)| ca)
            .chain(old.key_ids.iter().chain(&published.key_ids).map(|(ca, _)| ca))
            .collect(),
    );
    let keys = keys_of(old.keys.iter().chain(&published.keys).collect());
    let key_ids: BTreeSet<&str> = old.key_ids.iter().chain(&published.key_ids).map(|(_, id)| id.as_str()).collect();
    let revoked = Revoked {
        serials: old.serials.iter().chain(&published.serials).map(|(_, serial)| *serial).collect(),
        key_ids: key_ids.into_iter().collect(),
        cas: cas.iter().collect(),
        keys: keys.iter().collect(),
    };
    let version = version_of(new).unwrap_or_default().max(version_of(installed).unwrap_or_default());
    let comment = format!("sshca: the published KRL, and {dropped} revocation(s) it dropped");
    Ok((encode(&revoked, version, published.generated_at.max(old.generated_at), &comment), dropped))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("it is truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Result<&'a [u8], String> {
        let length = self.u32()? as usize;
        self.take(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_sections() {
        let ca = KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([1; 32]));
        let krl = encode(&Revoked { serials: vec![5, 3, 5, 0], key_ids: vec!["b", "a"], cas: vec![&ca], keys: vec![] }, 7, 1000, "c");
        assert_eq!(&krl[..8], b"SSHKRL\n\0");
        assert_eq!(version_of(&krl), Some(7));
        // serials sorted and de-duplicated, zero dropped: 3 then 5
        let list = [0x20, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 5];
        assert!(krl.windows(list.len()).any(|w| w == list), "serial list not found");
        assert_eq!(version_of(b"not a krl at all, really"), None);
        let key = KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([2; 32]));
        let krl = encode(&Revoked { serials: vec![5, 3], key_ids: vec!["b", "a"], cas: vec![&ca], keys: vec![&key] }, 7, 1000, "c");
        assert_eq!(summarize(&krl), Ok(Summary { version: 7, generated_at: 1000, revoked: 5 }));
        assert!(summarize(&krl[..krl.len() - 3]).unwrap_err().contains("truncated"));
        assert!(summarize(b"garbage!").unwrap_err().contains("SSHKRL"));
        let contents = decode(&krl).unwrap();
        assert_eq!(contents.serials, [(blob(&ca), 3), (blob(&ca), 5)].into_iter().collect());
        assert_eq!(contents.keys, [blob(&key)].into_iter().collect());
        assert_eq!(contents.cas(), [blob(&ca).as_slice()].into_iter().collect());
        let fewer = decode(&encode(&Revoked { serials: vec![5], key_ids: vec!["a"], cas: vec![&ca], keys: vec![] }, 8, 1001, "c")).unwrap();
        assert_eq!(contents.not_in(&fewer), 3, "serial 3, key id b and the key");
        assert_eq!(fewer.not_in(&contents), 0);
    }

    #[test]
    fn a_users_machine_keeps_what_a_published_krl_drops() {
        let ca = KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([1; 32]));
        let host_ca = KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([4; 32]));
        let key = KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([2; 32]));
        let installed = encode(&Revoked { serials: vec![3, 5], key_ids: vec!["web#5"], cas: vec![&ca], keys: vec![&key] }, 4, 1000, "c");
        // revoking more: installed as published
        let more = encode(&Revoked { serials: vec![3, 5, 7], key_ids: vec!["web#5"], cas: vec![&ca], keys: vec![&key] }, 5, 1001, "c");
        assert_eq!(keeping_revocations(&installed, &more), Ok((more.clone(), 0)));
        // a planted KRL that drops serial 5 and the key, under a CA of its own: both together
        let planted = encode(&Revoked { serials: vec![3, 9], key_ids: vec![], cas: vec![&host_ca], keys: vec![] }, 9, 1002, "c");
        let (kept, dropped) = keeping_revocations(&installed, &planted).unwrap();
        assert_eq!(dropped, 4, "serials 3 and 5 and the key id under the old CA, and the key");
        let kept = decode(&kept).unwrap();
        assert_eq!(decode(&installed).unwrap().not_in(&kept), 0, "nothing un-revoked");
        assert_eq!(decode(&planted).unwrap().not_in(&kept), 0, "what is newly revoked, revoked");
        assert_eq!(version_of(&keeping_revocations(&installed, &planted).unwrap().0), Some(9));
        // a hand-made KRL is replaced; a published one sshca cannot read is refused
        assert_eq!(keeping_revocations(b"garbage!", &planted), Ok((planted.clone(), 0)));
        assert!(keeping_revocations(&installed, b"garbage!").is_err());
    }

    #[test]
    fn a_replacement_must_be_a_krl_of_ours_that_revokes_no_less() {
        let ca = KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([1; 32]));
        let other = KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([3; 32]));
        let krl =
            |serials: Vec<u64>, ca: &KeyData| encode(&Revoked { serials, key_ids: vec![], cas: vec![ca], keys: vec![] }, 1, 1000, "c");
        let cas = [blob(&ca)];
        let installed = krl(vec![3, 5], &ca);
        assert_eq!(check_replacement(&krl(vec![3, 5, 7], &ca), Some(&installed), &cas, false), Ok(()));
        assert!(check_replacement(&krl(vec![3], &ca), Some(&installed), &cas, false)
            .unwrap_err()
            .contains("1 certificate(s) or key(s) fewer"));
        assert_eq!(check_replacement(&krl(vec![3], &ca), Some(&installed), &cas, true), Ok(()));
        assert!(check_replacement(b"<html>not found</html>", Some(&installed), &cas, true)
            .unwrap_err()
            .contains("not one sshca publishes"));
        assert!(check_replacement(&krl(vec![3, 5], &other), None, &cas, false).unwrap_err().contains("does not have"));
        assert_eq!(check_replacement(&krl(vec![], &ca), None, &cas, false), Ok(()), "an empty KRL scopes nothing");
        // a retired CA's revocations (or junk under a CA nobody trusts) may go; ours may not
        let both = encode(&Revoked { serials: vec![3, 5], key_ids: vec![], cas: vec![&ca, &other], keys: vec![] }, 1, 1000, "c");
        assert_eq!(check_replacement(&installed, Some(&both), &cas, false), Ok(()));
        assert!(check_replacement(&krl(vec![3], &ca), Some(b"not a krl"), &cas, false).unwrap_err().contains("cannot be told"));
        assert_eq!(check_replacement(&krl(vec![3], &ca), Some(b"not a krl"), &cas, true), Ok(()));
    }
}

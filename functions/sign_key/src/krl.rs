//! OpenSSH Key Revocation Lists (`PROTOCOL.krl`), the binary format sshd's `RevokedKeys` and
//! `ssh-keygen -Q` read. Written by hand: no maintained Rust crate produces KRLs, and sshca needs
//! only three section kinds (certificate serials and key ids per CA, and explicit keys).

use ssh_encoding::Encode;
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

fn key_blob(key: &KeyData) -> Vec<u8> {
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
            put_string(&mut section, &key_blob(ca));
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
        let mut blobs: Vec<Vec<u8>> = revoked.keys.iter().map(|k| key_blob(k)).collect();
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
    }
}

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

/// What a KRL says about itself and how much it revokes, for a server's health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub version: u64,
    /// Unix seconds.
    pub generated_at: u64,
    /// Certificates (serials, serial ranges, key ids) and keys (explicit, by hash) it revokes.
    pub revoked: u64,
}

/// Reads any KRL OpenSSH writes (every section and subsection kind of `PROTOCOL.krl`), or says why
/// it is not one.
pub fn summarize(krl: &[u8]) -> Result<Summary, String> {
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
    let mut revoked = 0u64;
    while !reader.0.is_empty() {
        let kind = reader.take(1)?[0];
        let mut section = Reader(reader.string()?);
        match kind {
            SECTION_CERTIFICATES => {
                section.string()?; // CA key
                section.string()?; // reserved
                while !section.0.is_empty() {
                    let sub = section.take(1)?[0];
                    let mut body = Reader(section.string()?);
                    revoked += match sub {
                        CERT_SERIAL_LIST => (body.0.len() / 8) as u64,
                        0x21 => {
                            let mut count = 0u64;
                            while !body.0.is_empty() {
                                let (low, high) = (body.u64()?, body.u64()?);
                                count = count.saturating_add(high.saturating_sub(low).saturating_add(1));
                            }
                            count
                        }
                        0x22 => {
                            body.u64()?;
                            body.string()?.iter().map(|byte| u64::from(byte.count_ones())).sum()
                        }
                        CERT_KEY_ID => {
                            let mut count = 0;
                            while !body.0.is_empty() {
                                body.string()?;
                                count += 1;
                            }
                            count
                        }
                        other => return Err(format!("it has an unknown certificate subsection {other:#x}")),
                    };
                }
            }
            SECTION_EXPLICIT_KEY | 3 | 5 => {
                while !section.0.is_empty() {
                    section.string()?;
                    revoked += 1;
                }
            }
            4 => {} // signatures
            other => return Err(format!("it has an unknown section {other}")),
        }
    }
    Ok(Summary { version, generated_at, revoked })
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
    }
}

//! What the CA keys signed against what the books record: the detective control for "whoever runs
//! code as the function's role (or otherwise holds kms:Sign on a CA key) can have KMS sign any
//! digest, a certificate of their own included, and write no audit record". Nothing the issuer
//! does can prevent that, and the books cannot show it: CloudTrail is the only record of a
//! signature the books do not know of. So the `kms:Sign` events on the CA keys are counted per UTC
//! day against the signed certificates the books hold (issued records, and void records that hold
//! a certificate), and the days on which KMS signed more than the books account for are named.
//! `sshca verify ENV --cloudtrail-events FILE` runs it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use sshca_core::audit::{AuditEntry, Event};

const DAY: u64 = 86_400;

/// The longest a record trails its signature: the function's longest run (Lambda ends it at 15
/// minutes). A void record that carries a certificate is written when the request fails, which is
/// at most that long after the signature.
const RECORD_LAG: u64 = 15 * 60;

const KMS_KEY: &str = "AWS::KMS::Key";

/// One signature KMS made, as CloudTrail recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignEvent {
    /// The key's ARN (or key id, where the event names no ARN).
    pub key_arn: String,
    /// When KMS signed, in Unix seconds.
    pub at: u64,
}

/// A record of what KMS signed.
pub trait SigningEvents {
    /// Every successful `kms:Sign` the record holds, on any key.
    fn sign_events(&self) -> Result<Vec<SignEvent>, String>;
}

/// The JSON that `aws cloudtrail lookup-events --lookup-attributes
/// AttributeKey=EventName,AttributeValue=Sign --output json` prints: `{"Events": [...]}` (or the
/// bare list, as `--query Events` prints it).
#[derive(Debug, Clone)]
pub struct CloudTrailExport {
    events: Vec<SignEvent>,
}

impl CloudTrailExport {
    /// Reads the export. Events other than KMS's `Sign`, and Sign calls that KMS refused or failed
    /// (an `errorCode`: no signature was made), are left out. A Sign event without a readable time
    /// or key is an error, not skipped: a signature left out here is one that goes unnoticed.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let root: Value = serde_json::from_slice(bytes)
            .map_err(|err| format!("not the JSON that `aws cloudtrail lookup-events --output json` prints: {err}"))?;
        // an export cut short counts too few signatures, and nothing would say so
        if root.get("NextToken").is_some_and(|token| !token.is_null()) {
            return Err(
                "the export holds only its first page(s) (it has a NextToken): run `aws cloudtrail lookup-events` without --max-items or --no-paginate, so that it pages through every event"
                    .into(),
            );
        }
        let listed = match &root {
            Value::Array(events) => events,
            _ => root.get("Events").and_then(Value::as_array).ok_or(
                "the JSON has no \"Events\" list: give the output of `aws cloudtrail lookup-events --lookup-attributes AttributeKey=EventName,AttributeValue=Sign --output json`",
            )?,
        };
        let mut events = Vec::new();
        for (i, event) in listed.iter().enumerate() {
            let which = || match event.get("EventId").and_then(Value::as_str) {
                Some(id) => format!("event {id}"),
                None => format!("event #{}", i + 1),
            };
            // the full event, as CloudTrail wrote it: a JSON string (or an object, once unpacked with jq's fromjson)
            let inner = match event.get("CloudTrailEvent") {
                Some(Value::String(text)) => {
                    serde_json::from_str::<Value>(text).map_err(|err| format!("{}: its CloudTrailEvent is not JSON: {err}", which()))?
                }
                Some(other) => other.clone(),
                None => Value::Null,
            };
            let field = |outer: &str, inner_name: &str| event.get(outer).or_else(|| inner.get(inner_name)).and_then(Value::as_str);
            if field("EventName", "eventName") != Some("Sign")
                || field("EventSource", "eventSource").is_some_and(|source| source != "kms.amazonaws.com")
            {
                continue;
            }
            if inner.get("errorCode").is_some_and(|code| !code.is_null()) {
                continue;
            }
            let at = [event.get("EventTime"), inner.get("eventTime")]
                .into_iter()
                .flatten()
                .find_map(unix_seconds)
                .ok_or_else(|| format!("{}: a Sign event without a readable EventTime (Unix seconds or RFC 3339)", which()))?;
            // the key as CloudTrail resolved it (an ARN, even when the caller named an alias), else as the caller named it
            let listed_key = event
                .get("Resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|resource| resource.get("ResourceType").and_then(Value::as_str).is_none_or(|kind| kind == KMS_KEY))
                .find_map(|resource| resource.get("ResourceName").and_then(Value::as_str));
            let resolved_key = inner
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|resource| resource.get("type").and_then(Value::as_str).is_none_or(|kind| kind == KMS_KEY))
                .find_map(|resource| resource.get("ARN").and_then(Value::as_str));
            let requested_key = inner.get("requestParameters").and_then(|parameters| parameters.get("keyId")).and_then(Value::as_str);
            let key = [listed_key, resolved_key, requested_key].into_iter().flatten().find(|key| !key.is_empty()).ok_or_else(|| {
                format!(
                    "{}: a Sign event that names no KMS key (Resources, or resources/requestParameters.keyId in CloudTrailEvent)",
                    which()
                )
            })?;
            events.push(SignEvent { key_arn: key.to_owned(), at });
        }
        Ok(Self { events })
    }
}

impl SigningEvents for CloudTrailExport {
    fn sign_events(&self) -> Result<Vec<SignEvent>, String> {
        Ok(self.events.clone())
    }
}

/// An event time: Unix seconds as a number (AWS CLI v1) or an RFC 3339 string (v2).
fn unix_seconds(time: &Value) -> Option<u64> {
    let seconds = |float: f64| (float.is_finite() && float >= 0.0).then_some(float as u64);
    match time {
        Value::Number(number) => number.as_u64().or_else(|| number.as_f64().and_then(seconds)),
        Value::String(text) => OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .and_then(|at| u64::try_from(at.unix_timestamp()).ok())
            .or_else(|| text.parse::<f64>().ok().and_then(seconds)),
        _ => None,
    }
}

/// The key id in a KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID` gives `ID`); a bare key id
/// (or an alias) as it is. CloudTrail names keys by ARN and a policy may name them either way.
/// Only the id is compared: a lookup-events export is of one region and account, and the
/// policy's keys are the environment's own (key_ownership).
pub fn key_id_of(key: &str) -> &str {
    match key.rsplit_once(":key/") {
        Some((_, id)) => id,
        None => key.strip_prefix("key/").unwrap_or(key),
    }
}

/// When each certificate in `entries` was signed, as far as the books tell (Unix seconds): one
/// time per serial that has an issued record or a void record holding a certificate. A void
/// record without one stands for a signing that failed, so for no signature. A serial named by
/// both (the issued record landed but its answer was lost, and the void record then carried the
/// certificate) was signed once, at its earliest record. The record's `timestamp` is taken just
/// after KMS answered; a record without a readable one falls back to its `valid_after`.
pub fn recorded_signatures<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Vec<u64> {
    let mut signed: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in entries {
        if entry.event == Event::Void && entry.certificate.is_none() {
            continue;
        }
        let at = OffsetDateTime::parse(&entry.timestamp, &Rfc3339)
            .ok()
            .and_then(|at| u64::try_from(at.unix_timestamp()).ok())
            .unwrap_or(entry.valid_after);
        signed.entry(entry.serial).and_modify(|first| *first = (*first).min(at)).or_insert(at);
    }
    signed.into_values().collect()
}

/// A UTC day on which KMS signed more with the CA keys than the books account for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unaccounted {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// The `kms:Sign` events on the CA keys that day.
    pub signatures: usize,
    /// The signed certificates the books record that day.
    pub recorded: usize,
    /// The day's signatures that no record accounts for (records of the day before or after
    /// may account for some: see [`reconcile`]).
    pub unaccounted: usize,
}

/// The days on which `events` on the keys `ca_key_arns` (ARNs or bare key ids; events on other
/// keys are ignored) outnumber the signatures the books record at the times `recorded` (see
/// [`recorded_signatures`]).
///
/// A signature comes before its record, by at most the function's longest run: one made just
/// before midnight is recorded the next day, and a clock a little ahead of CloudTrail's may date a
/// record just after midnight the day before. Counting per day alone would report such a day;
/// running totals over days would let a surplus of records anywhere (the days before the export
/// begins) cover for signatures of any later day. So each day's signatures are first matched with
/// that day's records, and what is left over either way may be matched with the day before or
/// after, never further. A spare record can stand for one signature only, so no count is lost:
/// with more signatures than records overall, some day is reported.
///
/// Only records inside the export's window count: one before its first event, or more than the
/// function's longest run after its last, cannot be of a signature it holds, and would otherwise
/// cover for one it does.
pub fn reconcile(events: &[SignEvent], ca_key_arns: &[String], recorded: &[u64]) -> Vec<Unaccounted> {
    let (Some(first), Some(last)) = (events.iter().map(|event| event.at).min(), events.iter().map(|event| event.at).max()) else {
        return Vec::new();
    };
    let keys: BTreeSet<&str> = ca_key_arns.iter().map(|key| key_id_of(key)).collect();
    let mut days: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for event in events.iter().filter(|event| keys.contains(key_id_of(&event.key_arn))) {
        days.entry(event.at / DAY).or_default().0 += 1;
    }
    for &at in recorded.iter().filter(|&&at| first <= at && at <= last.saturating_add(RECORD_LAG)) {
        days.entry(at / DAY).or_default().1 += 1;
    }

    struct Tally {
        day: u64,
        signatures: usize,
        recorded: usize,
        /// signatures no record has accounted for yet
        unmatched: usize,
        /// records with no signature of their own yet
        spare: usize,
    }
    let settle = |tally: Tally| {
        (tally.unmatched > 0).then(|| Unaccounted {
            day: day_name(tally.day),
            signatures: tally.signatures,
            recorded: tally.recorded,
            unaccounted: tally.unmatched,
        })
    };
    let mut found = Vec::new();
    let mut previous: Option<Tally> = None;
    for (day, (signatures, recorded)) in days {
        let matched = signatures.min(recorded);
        let mut today = Tally { day, signatures, recorded, unmatched: signatures - matched, spare: recorded - matched };
        if let Some(before) = previous.as_mut().filter(|before| before.day + 1 == day) {
            // signatures of yesterday recorded after midnight
            let late = before.unmatched.min(today.spare);
            before.unmatched -= late;
            today.spare -= late;
            // signatures of today whose records are dated yesterday
            let early = today.unmatched.min(before.spare);
            today.unmatched -= early;
        }
        found.extend(previous.replace(today).and_then(settle));
    }
    found.extend(previous.and_then(settle));
    found
}

fn day_name(day: u64) -> String {
    let date = OffsetDateTime::from_unix_timestamp((day * DAY).min(253_402_300_799) as i64).map(|at| at.date()).unwrap_or(time::Date::MAX);
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CA: &str = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const OTHER: &str = "arn:aws:kms:eu-west-1:111111111111:key/0000ffff-0000-0000-0000-000000000000";

    fn at(text: &str) -> u64 {
        OffsetDateTime::parse(text, &Rfc3339).unwrap().unix_timestamp() as u64
    }

    fn signed(key: &str, when: &str) -> SignEvent {
        SignEvent { key_arn: key.to_owned(), at: at(when) }
    }

    fn ca_keys() -> Vec<String> {
        vec![CA.to_owned()]
    }

    fn entry(serial: u64, event: &str, timestamp: &str, certificate: Option<&str>) -> AuditEntry {
        serde_json::from_value(json!({
            "event": event, "environment": "prod", "serial": serial, "key_id": format!("alice#{serial}"), "username": "alice",
            "reason": "test", "principals": ["alice"], "cert_type": "user", "valid_after": 1_000, "valid_before": 2_000,
            "public_key_fingerprint": "SHA256:k", "ca_fingerprint": "SHA256:ca", "request_id": "r", "timestamp": timestamp,
            "certificate": certificate,
        }))
        .unwrap()
    }

    #[test]
    fn reads_lookup_events_output() {
        let inner = |value: Value| value.to_string();
        let export = json!({"Events": [
            // AWS CLI v1: Unix seconds, the key among the event's Resources
            {"EventId": "1", "EventName": "Sign", "EventTime": at("2024-03-10T12:00:00Z") as f64, "EventSource": "kms.amazonaws.com",
             "Resources": [{"ResourceType": "AWS::KMS::Key", "ResourceName": CA}],
             "CloudTrailEvent": inner(json!({"eventName": "Sign", "requestParameters": {"keyId": "alias/sshca-prod-user"}}))},
            // AWS CLI v2: RFC 3339 with an offset, the key only in the full event's resources
            {"EventId": "2", "EventName": "Sign", "EventTime": "2024-03-10T14:30:00+01:00",
             "CloudTrailEvent": inner(json!({"eventSource": "kms.amazonaws.com", "resources": [{"type": "AWS::KMS::Key", "ARN": OTHER}]}))},
            // the key only as the caller named it
            {"EventId": "3", "EventName": "Sign", "EventTime": "2024-03-11T00:00:05Z",
             "CloudTrailEvent": inner(json!({"requestParameters": {"keyId": CA}}))},
            // not a signature
            {"EventId": "4", "EventName": "GetPublicKey", "EventTime": "2024-03-10T12:00:00Z", "Resources": [{"ResourceType": "AWS::KMS::Key", "ResourceName": CA}]},
            // refused by KMS: no signature made
            {"EventId": "5", "EventName": "Sign", "EventTime": "2024-03-10T12:00:00Z", "Resources": [{"ResourceType": "AWS::KMS::Key", "ResourceName": CA}],
             "CloudTrailEvent": inner(json!({"errorCode": "AccessDeniedException"}))},
            // another service's Sign
            {"EventId": "6", "EventName": "Sign", "EventSource": "signer.amazonaws.com", "EventTime": "2024-03-10T12:00:00Z"},
        ]});
        let export = CloudTrailExport::from_json(&serde_json::to_vec(&export).unwrap()).unwrap();
        assert_eq!(
            export.sign_events().unwrap(),
            vec![signed(CA, "2024-03-10T12:00:00Z"), signed(OTHER, "2024-03-10T13:30:00Z"), signed(CA, "2024-03-11T00:00:05Z")]
        );
        // the bare list reads the same
        let bare = json!([{"EventName": "Sign", "EventTime": 1_710_072_000u64, "Resources": [{"ResourceType": "AWS::KMS::Key", "ResourceName": CA}]}]);
        let read = CloudTrailExport::from_json(&serde_json::to_vec(&bare).unwrap()).unwrap().sign_events().unwrap();
        assert_eq!(read, vec![SignEvent { key_arn: CA.to_owned(), at: 1_710_072_000 }]);
    }

    #[test]
    fn refuses_exports_that_would_count_too_few() {
        let cut_short = json!({"Events": [], "NextToken": "abc"});
        assert!(CloudTrailExport::from_json(&serde_json::to_vec(&cut_short).unwrap()).unwrap_err().contains("NextToken"));
        let timeless = json!({"Events": [{"EventId": "7", "EventName": "Sign", "Resources": [{"ResourceType": "AWS::KMS::Key", "ResourceName": CA}]}]});
        assert!(CloudTrailExport::from_json(&serde_json::to_vec(&timeless).unwrap()).unwrap_err().contains("event 7"));
        let keyless = json!({"Events": [{"EventName": "Sign", "EventTime": "2024-03-10T12:00:00Z"}]});
        assert!(CloudTrailExport::from_json(&serde_json::to_vec(&keyless).unwrap()).unwrap_err().contains("names no KMS key"));
        assert!(CloudTrailExport::from_json(b"{\"Records\": []}").is_err());
        assert!(CloudTrailExport::from_json(b"not json").is_err());
    }

    #[test]
    fn a_day_with_an_extra_signature_is_reported() {
        let events = [
            signed(CA, "2024-03-10T09:00:00Z"),
            signed(CA, "2024-03-10T10:00:00Z"),
            signed(CA, "2024-03-11T12:00:00Z"),
            signed(CA, "2024-03-11T12:30:00Z"),
            signed(CA, "2024-03-12T08:00:00Z"),
        ];
        let recorded = [at("2024-03-10T09:00:01Z"), at("2024-03-10T10:00:01Z"), at("2024-03-11T12:00:01Z"), at("2024-03-12T08:00:01Z")];
        assert_eq!(
            reconcile(&events, &ca_keys(), &recorded),
            vec![Unaccounted { day: "2024-03-11".into(), signatures: 2, recorded: 1, unaccounted: 1 }]
        );
    }

    #[test]
    fn signatures_with_other_keys_are_ignored() {
        let events = [signed(CA, "2024-03-10T09:00:00Z"), signed(OTHER, "2024-03-10T09:05:00Z"), signed(OTHER, "2024-03-10T09:06:00Z")];
        let recorded = [at("2024-03-10T09:00:01Z")];
        assert_eq!(reconcile(&events, &ca_keys(), &recorded), Vec::<Unaccounted>::new());
        // the CA key named by its bare id matches its ARN in the events
        assert_eq!(reconcile(&events, &["1234abcd-12ab-34cd-56ef-1234567890ab".to_owned()], &recorded), Vec::<Unaccounted>::new());
        assert_eq!(reconcile(&events, &["1234abcd-12ab-34cd-56ef-1234567890ab".to_owned()], &[]).len(), 1);
    }

    #[test]
    fn matching_books_give_nothing() {
        let events = [signed(CA, "2024-03-10T09:00:00Z"), signed(CA, "2024-03-11T09:00:00Z"), signed(CA, "2024-03-20T09:00:00Z")];
        let recorded = [at("2024-03-10T09:00:01Z"), at("2024-03-11T09:00:01Z"), at("2024-03-20T09:00:01Z")];
        assert_eq!(reconcile(&events, &ca_keys(), &recorded), Vec::<Unaccounted>::new());
        assert_eq!(reconcile(&[], &ca_keys(), &recorded), Vec::<Unaccounted>::new());
    }

    #[test]
    fn a_signature_recorded_across_midnight_is_accounted_for() {
        // signed just before midnight, recorded just after
        let events = [signed(CA, "2024-03-10T23:59:59Z")];
        assert_eq!(reconcile(&events, &ca_keys(), &[at("2024-03-11T00:00:01Z")]), Vec::<Unaccounted>::new());
        // signed just after midnight by CloudTrail's clock, recorded just before by the function's
        let events = [signed(CA, "2024-03-10T09:00:00Z"), signed(CA, "2024-03-11T00:00:01Z")];
        assert_eq!(reconcile(&events, &ca_keys(), &[at("2024-03-10T09:00:01Z"), at("2024-03-10T23:59:59Z")]), Vec::<Unaccounted>::new());
        // but a record of the next day covers one signature only: an extra one that day is still reported
        let events = [signed(CA, "2024-03-10T12:00:00Z"), signed(CA, "2024-03-10T23:59:59Z")];
        assert_eq!(
            reconcile(&events, &ca_keys(), &[at("2024-03-11T00:00:01Z")]),
            vec![Unaccounted { day: "2024-03-10".into(), signatures: 2, recorded: 0, unaccounted: 1 }]
        );
        // and records two days later account for nothing
        let events = [signed(CA, "2024-03-10T12:00:00Z"), signed(OTHER, "2024-03-12T12:00:00Z")];
        assert_eq!(reconcile(&events, &ca_keys(), &[at("2024-03-12T11:00:00Z")]).len(), 1);
    }

    #[test]
    fn records_outside_the_exports_window_account_for_nothing() {
        let events = [signed(CA, "2024-03-10T00:30:00Z"), signed(CA, "2024-03-10T12:00:00Z")];
        // the day before the export begins, and long after its last event
        let recorded = [at("2024-03-09T23:00:00Z"), at("2024-03-10T00:30:01Z"), at("2024-03-10T23:00:00Z")];
        assert_eq!(
            reconcile(&events, &ca_keys(), &recorded),
            vec![Unaccounted { day: "2024-03-10".into(), signatures: 2, recorded: 1, unaccounted: 1 }]
        );
    }

    #[test]
    fn recorded_signatures_count_each_signed_serial_once() {
        let entries = [
            entry(1, "issued", "2024-03-10T09:00:01Z", Some("cert-1")),
            // the issued record's answer was lost: the void record carries the same certificate
            entry(1, "void", "2024-03-10T09:00:09Z", Some("cert-1")),
            // KMS failed: nothing was signed
            entry(2, "void", "2024-03-10T09:01:00Z", None),
            // signed, but the audit write failed at first
            entry(3, "void", "2024-03-10T09:02:00Z", Some("cert-3")),
            entry(4, "issued", "not a time", Some("cert-4")),
        ];
        assert_eq!(recorded_signatures(&entries), vec![at("2024-03-10T09:00:01Z"), at("2024-03-10T09:02:00Z"), 1_000]);
    }

    #[test]
    fn key_ids_are_compared_without_their_arn() {
        assert_eq!(key_id_of(CA), "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(key_id_of("1234abcd-12ab-34cd-56ef-1234567890ab"), "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(key_id_of("key/mrk-1"), "mrk-1");
        assert_eq!(key_id_of("arn:aws:kms:eu-west-1:111111111111:alias/sshca"), "arn:aws:kms:eu-west-1:111111111111:alias/sshca");
    }
}

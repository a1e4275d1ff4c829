//! The one EC2 call sshca makes, `DescribeInstances` of one instance, written by hand: the EC2
//! Query API request signed with `aws-sigv4`, sent with `ureq`, its XML answer read with
//! `aws-smithy-xml` (the SDK's own decoder). Why not `aws-sdk-ec2`: for this one read-only call it
//! cost over 13 CPU-minutes of every cold debug build on a 2-core machine (measured with
//! `cargo build --timings`: it alone doubled CI, past its time budget) and megabytes of the
//! function's binary, which every cold start loads.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity as SigningIdentity;
use aws_smithy_xml::decode::{try_data, Document, ScopedDecoder};

/// What sshca reads of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// `pending`, `running`, `stopped`…
    pub state: String,
    pub private_dns_name: String,
    /// The primary private IPv4 address first, then the others of every interface.
    pub private_ips: Vec<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub instance_profile_arn: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Instance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Why an instance could not be described.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    #[error("EC2 knows no such instance here")]
    NotFound,
    #[error("{0}")]
    Failed(String),
}

/// EC2 of one account and region, as `config`'s credentials.
#[derive(Clone)]
pub struct Ec2 {
    config: SdkConfig,
}

const API_VERSION: &str = "2016-11-15";

impl Ec2 {
    pub fn new(config: SdkConfig) -> Self {
        Self { config }
    }

    /// `AWS_ENDPOINT_URL_EC2` / `AWS_ENDPOINT_URL` (as the SDKs read them), else the region's.
    fn endpoint(&self, region: &str) -> String {
        let configured =
            std::env::var("AWS_ENDPOINT_URL_EC2").ok().filter(|v| !v.is_empty()).or_else(|| self.config.endpoint_url().map(str::to_owned));
        let endpoint = configured.unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"));
        format!("{}/", endpoint.trim_end_matches('/'))
    }

    /// The instance `instance_id`, or [`Ec2Error::NotFound`].
    pub async fn describe_instance(&self, instance_id: &str) -> Result<Instance, Ec2Error> {
        let failed = |what: &str, err: &dyn std::fmt::Display| Ec2Error::Failed(format!("{what}: {err}"));
        let region = self.config.region().ok_or_else(|| Ec2Error::Failed("no AWS region is configured".into()))?.to_string();
        let provider = self.config.credentials_provider().ok_or_else(|| Ec2Error::Failed("no AWS credentials are configured".into()))?;
        let credentials = provider.provide_credentials().await.map_err(|err| failed("no credentials for EC2", &err))?;
        let endpoint = self.endpoint(&region);
        let body = format!("Action=DescribeInstances&Version={API_VERSION}&InstanceId.1={instance_id}");
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let identity: SigningIdentity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|err| failed("signing the EC2 request", &err))?
            .into();
        let headers = [("content-type", content_type)];
        let signable = SignableRequest::new("POST", endpoint.as_str(), headers.iter().copied(), SignableBody::Bytes(body.as_bytes()))
            .map_err(|err| failed(&format!("the EC2 endpoint {endpoint:?} (AWS_ENDPOINT_URL_EC2)"), &err))?;
        let (instructions, _) = sign(signable, &params).map_err(|err| failed("signing the EC2 request", &err))?.into_parts();
        let signed: Vec<(String, String)> = instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        // ureq blocks: off the async workers (a host renews seldom, so one thread per call is cheap)
        let (status, text) = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent =
                ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).http_status_as_error(false).build().into();
            let mut request = agent.post(&endpoint).header("content-type", content_type);
            for (name, value) in &signed {
                request = request.header(name, value);
            }
            let mut response = request.send(body.as_bytes()).map_err(|err| format!("EC2 at {endpoint} could not be reached: {err}"))?;
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().map_err(|err| format!("EC2's answer could not be read: {err}"))?;
            Ok::<_, String>((status, text))
        })
        .await
        .map_err(|err| failed("the EC2 request", &err))?
        .map_err(Ec2Error::Failed)?;
        if status != 200 {
            let code = between(&text, "<Code>", "</Code>").unwrap_or_default();
            if code == "InvalidInstanceID.NotFound" || code == "InvalidInstanceID.Malformed" {
                return Err(Ec2Error::NotFound);
            }
            let message = between(&text, "<Message>", "</Message>").unwrap_or_default();
            return Err(Ec2Error::Failed(format!("EC2 answered HTTP {status} {code}: {message}")));
        }
        parse_instances(&text)
            .map_err(|err| failed("EC2's answer is not a DescribeInstances response", &err))?
            .into_iter()
            .find(|instance| instance.id == instance_id)
            .ok_or(Ec2Error::NotFound)
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(start)?;
    Some(rest.split_once(end)?.0)
}

type XmlResult<T> = Result<T, aws_smithy_xml::decode::XmlDecodeError>;

/// Every instance of a `DescribeInstancesResponse`.
pub fn parse_instances(xml: &str) -> XmlResult<Vec<Instance>> {
    let mut document = Document::new(xml);
    let mut root = document.root_element()?;
    let mut instances = Vec::new();
    while let Some(mut tag) = root.next_tag() {
        if !tag.start_el().matches("reservationSet") {
            continue;
        }
        while let Some(mut reservation) = tag.next_tag() {
            while let Some(mut field) = reservation.next_tag() {
                if field.start_el().matches("instancesSet") {
                    while let Some(mut item) = field.next_tag() {
                        instances.push(parse_instance(&mut item)?);
                    }
                }
            }
        }
    }
    Ok(instances)
}

fn text(tag: &mut ScopedDecoder) -> XmlResult<String> {
    Ok(try_data(tag)?.trim().to_owned())
}

fn parse_instance(item: &mut ScopedDecoder) -> XmlResult<Instance> {
    let mut instance = Instance::default();
    let mut other_ips = Vec::new();
    while let Some(mut field) = item.next_tag() {
        let name = field.start_el().local().to_owned();
        match name.as_str() {
            "instanceId" => instance.id = text(&mut field)?,
            "privateDnsName" => instance.private_dns_name = text(&mut field)?,
            "privateIpAddress" => instance.private_ips.insert(0, text(&mut field)?),
            "vpcId" => instance.vpc_id = Some(text(&mut field)?),
            "subnetId" => instance.subnet_id = Some(text(&mut field)?),
            "instanceState" => {
                while let Some(mut state) = field.next_tag() {
                    if state.start_el().matches("name") {
                        instance.state = text(&mut state)?;
                    }
                }
            }
            "iamInstanceProfile" => {
                while let Some(mut profile) = field.next_tag() {
                    if profile.start_el().matches("arn") {
                        instance.instance_profile_arn = Some(text(&mut profile)?);
                    }
                }
            }
            "tagSet" => {
                while let Some(mut tag) = field.next_tag() {
                    let (mut key, mut value) = (String::new(), String::new());
                    while let Some(mut part) = tag.next_tag() {
                        if part.start_el().matches("key") {
                            key = text(&mut part)?;
                        } else if part.start_el().matches("value") {
                            value = text(&mut part)?;
                        }
                    }
                    instance.tags.push((key, value));
                }
            }
            "networkInterfaceSet" => {
                while let Some(mut interface) = field.next_tag() {
                    while let Some(mut part) = interface.next_tag() {
                        if !part.start_el().matches("privateIpAddressesSet") {
                            continue;
                        }
                        while let Some(mut address) = part.next_tag() {
                            while let Some(mut value) = address.next_tag() {
                                if value.start_el().matches("privateIpAddress") {
                                    other_ips.push(text(&mut value)?);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for ip in other_ips {
        if !instance.private_ips.contains(&ip) {
            instance.private_ips.push(ip);
        }
    }
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as EC2 writes it (abridged from the API reference's example), with the fields
    /// sshca reads nested where EC2 nests them, and look-alikes elsewhere.
    const ANSWER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <groupSet/>
      <instancesSet>
        <item>
          <instanceId>i-1234567890abcdef0</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-10-0-0-157.us-east-2.compute.internal</privateDnsName>
          <dnsName>ec2-203-0-113-25.compute-1.amazonaws.com</dnsName>
          <privateIpAddress>10.0.0.157</privateIpAddress>
          <ipAddress>203.0.113.25</ipAddress>
          <subnetId>subnet-04a636d18e83cfacb</subnetId>
          <vpcId>vpc-1234567890abcdef0</vpcId>
          <tagSet><item><key>Name</key><value>Web &amp; DB</value></item><item><key>env</key><value>prod</value></item></tagSet>
          <iamInstanceProfile><arn>arn:aws:iam::123456789012:instance-profile/web</arn><id>AIPAJ</id></iamInstanceProfile>
          <networkInterfaceSet>
            <item>
              <networkInterfaceId>eni-0</networkInterfaceId>
              <privateIpAddress>10.0.0.157</privateIpAddress>
              <privateIpAddressesSet>
                <item><privateIpAddress>10.0.0.157</privateIpAddress><primary>true</primary></item>
                <item><privateIpAddress>10.0.0.158</privateIpAddress><primary>false</primary>
                  <association><publicIp>198.51.100.1</publicIp></association></item>
              </privateIpAddressesSet>
            </item>
          </networkInterfaceSet>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;

    #[test]
    fn reads_what_sshca_needs_of_an_instance_and_nothing_else() {
        let instances = parse_instances(ANSWER).unwrap();
        assert_eq!(
            instances,
            [Instance {
                id: "i-1234567890abcdef0".into(),
                state: "running".into(),
                private_dns_name: "ip-10-0-0-157.us-east-2.compute.internal".into(),
                private_ips: vec!["10.0.0.157".into(), "10.0.0.158".into()],
                vpc_id: Some("vpc-1234567890abcdef0".into()),
                subnet_id: Some("subnet-04a636d18e83cfacb".into()),
                instance_profile_arn: Some("arn:aws:iam::123456789012:instance-profile/web".into()),
                tags: vec![("Name".into(), "Web & DB".into()), ("env".into(), "prod".into())],
            }]
        );
        assert_eq!(instances[0].tag("env"), Some("prod"));
        assert!(parse_instances("<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>").unwrap().is_empty());
        assert!(parse_instances("not xml").is_err());
    }
}

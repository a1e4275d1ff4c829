//! The one EC2 call sshca makes, `DescribeInstances` of one instance, as a hand-made Query API
//! call ([`crate::query`]), its XML answer read with `aws-smithy-xml` (the SDK's own decoder).

use aws_config::SdkConfig;
use aws_smithy_xml::decode::{try_data, Document, ScopedDecoder};

use crate::query::{Query, QueryError};

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
    query: Query,
}

impl Ec2 {
    pub fn new(config: SdkConfig) -> Self {
        Self { query: Query::new(config, "ec2", "AWS_ENDPOINT_URL_EC2", "2016-11-15") }
    }

    /// The instance `instance_id`, or [`Ec2Error::NotFound`].
    pub async fn describe_instance(&self, instance_id: &str) -> Result<Instance, Ec2Error> {
        let xml = self.query.call("DescribeInstances", &[("InstanceId.1", instance_id)]).await.map_err(|err| match err {
            QueryError::Service { code, .. } if code == "InvalidInstanceID.NotFound" || code == "InvalidInstanceID.Malformed" => {
                Ec2Error::NotFound
            }
            other => Ec2Error::Failed(other.to_string()),
        })?;
        parse_instances(&xml)
            .map_err(|err| Ec2Error::Failed(format!("EC2's answer is not a DescribeInstances response: {err}")))?
            .into_iter()
            .find(|instance| instance.id == instance_id)
            .ok_or(Ec2Error::NotFound)
    }
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

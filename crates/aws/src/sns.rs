//! Just-in-time access announced on the environment's SNS topic (`SSHCA_TOPIC_ARN`, which the
//! template creates and lets the function publish to, and nothing else): one message per
//! notice, its subject one line, its body the notice as JSON. A topic that cannot be reached is
//! tried twice, 2 s each, then logged: it never holds up an issuance for long (the function has 15 s).

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use sshca_core::notify::{Notice, Notifier};

use crate::query::Query;

pub struct SnsNotifier {
    query: Query,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(config: SdkConfig, topic_arn: impl Into<String>) -> Self {
        Self {
            query: Query::new(config, "sns", "AWS_ENDPOINT_URL_SNS", "2010-03-31").with_timeout(Duration::from_secs(2)),
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, notice: &Notice) {
        let message = serde_json::to_string_pretty(notice).expect("a notice serializes");
        let subject = notice.subject();
        let mut pause = Duration::from_millis(100);
        for attempt in 1..=2 {
            let sent = self.query.call("Publish", &[("TopicArn", &self.topic_arn), ("Subject", &subject), ("Message", &message)]).await;
            match sent {
                Ok(_) => return,
                Err(err) if attempt == 2 => {
                    tracing::error!(event = notice.event, topic = %self.topic_arn, error = %err, "the notice could not be published: it is in this log only");
                }
                Err(err) => {
                    tracing::warn!(event = notice.event, attempt, error = %err, "publishing the notice failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                }
            }
        }
    }
}

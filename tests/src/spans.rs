//! Where an operation's time goes: a `tracing` layer that adds up, per span name, the wall time of
//! the spans that close while it records. It sees only the issuer's spans (each step of an
//! issuance that waits runs in a `debug` span named `issue.<step>`): the SDK's own spans stay
//! disabled, so that measuring costs the measured nothing. Written here because no kept crate reports span times to a program
//! (`tracing-timing` measures between events, and is unmaintained).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// What the layer has added up since it was last taken.
#[derive(Clone, Default)]
pub struct SpanTimes {
    recording: Arc<AtomicBool>,
    totals: Arc<Mutex<BTreeMap<&'static str, Duration>>>,
}

impl SpanTimes {
    /// Installs the layer as this process's subscriber (every span enabled) and returns its handle.
    pub fn install() -> Self {
        let times = Self::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(times.clone()))
            .expect("no other subscriber is installed");
        times
    }

    /// Starts adding up, from nothing.
    pub fn start(&self) {
        self.take();
        self.recording.store(true, Ordering::SeqCst);
    }

    /// Stops adding up.
    pub fn stop(&self) {
        self.recording.store(false, Ordering::SeqCst);
    }

    /// The time of each span name since the last take.
    pub fn take(&self) -> BTreeMap<&'static str, Duration> {
        std::mem::take(&mut *self.totals.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanTimes {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() && metadata.name().starts_with("issue.") {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(Instant::now());
        }
    }

    fn on_close(&self, id: Id, context: Context<'_, S>) {
        if !self.recording.load(Ordering::SeqCst) {
            return;
        }
        let Some(span) = context.span(&id) else { return };
        let Some(opened) = span.extensions().get::<Instant>().copied() else { return };
        *self.totals.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entry(span.name()).or_default() += opened.elapsed();
    }
}

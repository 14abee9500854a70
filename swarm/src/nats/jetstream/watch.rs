//! [`KvWatch`]: a KV watch, an ordered consumer (see `ordered.rs`) whose deliveries come to a
//! subscription of the watching process. The I/O lives here: making the consumer on a fresh
//! inbox, taking its messages, answering flow control, and making a new consumer after a gap
//! or when the heartbeats stop.

use std::time::{Duration, Instant};

use super::error::JsError;
use super::kv::KvBucket;
use super::kv_entry::KvEntry;
use super::names::{check_key_filter, kv_prefix, kv_stream};
use super::ordered::{create_request, ConsumerCreated, Ordered, Start, Step, SILENCE_LIMIT};
use super::stored::StoredMsg;
use super::JetStream;
use crate::nats::options::{random_token, NatsError};
use crate::nats::Subscription;

/// The changes to the keys of a bucket that match a filter, from [`KvBucket::watch`]. Its
/// messages arrive in the mailbox of the process that made it: only that process can take them
/// (the same rule as for a [`Subscription`], whose notes about receiving apply here too).
/// Dropping it deletes its consumer.
#[derive(Debug)]
pub struct KvWatch {
    js: JetStream,
    bucket: String,
    stream: String,
    prefix: String,
    filter_subject: String,
    headers_only: bool,
    sub: Option<Subscription>,
    consumer: Option<String>,
    ordered: Ordered,
    /// When the consumer was last heard from (a message, a heartbeat, its creation).
    last_heard: Instant,
    /// Deliveries were lost or the consumer is gone: make a new one before taking more.
    needs_reset: bool,
    resets: u64,
}

impl KvWatch {
    /// Watches the keys of `bucket` matching `filter`; `headers_only` leaves out the values.
    pub(crate) fn start(
        bucket: &KvBucket,
        filter: &str,
        headers_only: bool,
    ) -> Result<KvWatch, JsError> {
        let filter = check_key_filter(filter)?;
        let prefix = kv_prefix(bucket.name());
        let mut watch = KvWatch {
            js: bucket.jetstream().clone(),
            bucket: bucket.name().to_owned(),
            stream: kv_stream(bucket.name()),
            filter_subject: format!("{prefix}{filter}"),
            prefix,
            headers_only,
            sub: None,
            consumer: None,
            ordered: Ordered::new(Start::LastPerSubject),
            last_heard: Instant::now(),
            needs_reset: false,
            resets: 0,
        };
        watch.consume()?;
        Ok(watch)
    }

    /// The next entry, in revision order; `Ok(None)` if none came within `timeout`. Deletes,
    /// purges and the server's markers for values `max_age` removed arrive as entries with
    /// operation [`Delete`](super::KvOperation::Delete) or [`Purge`](super::KvOperation::Purge).
    ///
    /// Losses on the way are mended here: when a delivery is missing or the server has been
    /// silent for a few heartbeats (a server restart, a lost consumer), the watch makes a new
    /// consumer that starts after the last entry handed out; such a call may take up to the
    /// JetStream handle's timeout longer than `timeout`. An error (the server unreachable, the
    /// bucket deleted) leaves the watch usable: the next call tries again.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<KvEntry>, JsError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.needs_reset {
                self.consume()?;
                self.resets += 1;
            }
            let now = Instant::now();
            let silent_at = self.last_heard + SILENCE_LIMIT;
            let wait = deadline.min(silent_at).saturating_duration_since(now);
            let Some(sub) = self.sub.as_ref() else {
                self.needs_reset = true;
                continue;
            };
            // A zero timeout would wait a millisecond anyway; look without waiting instead.
            let received = if wait.is_zero() {
                sub.try_next()
            } else {
                match sub.next_timeout(wait) {
                    Ok(msg) => Some(msg),
                    Err(NatsError::TimedOut { .. }) => None,
                    Err(err) => return Err(JsError::Nats(err)),
                }
            };
            let Some(msg) = received else {
                let now = Instant::now();
                if now >= silent_at {
                    self.needs_reset = true;
                }
                if now >= deadline {
                    return Ok(None);
                }
                continue;
            };
            self.last_heard = Instant::now();
            match self.ordered.on_message(&msg) {
                Step::Deliver(ack) => {
                    let stored = StoredMsg {
                        subject: msg.subject,
                        sequence: ack.stream_seq,
                        headers: msg.headers,
                        payload: msg.payload,
                    };
                    return KvEntry::from_stored(&self.bucket, &self.prefix, stored).map(Some);
                }
                Step::Control { answer, reset } => {
                    for subject in answer {
                        // A lost answer stalls the consumer; its heartbeats then ask again.
                        let _ = self.js.client().publish(&subject, b"");
                    }
                    self.needs_reset |= reset;
                }
                Step::Reset(_) => self.needs_reset = true,
                Step::Ignore => {}
            }
        }
    }

    /// True once every entry that existed when the watch started has been handed out (the
    /// consumer's pending count reached 0 once).
    pub fn caught_up(&self) -> bool {
        self.ordered.caught_up()
    }

    /// How many times the watch made a new consumer after losing deliveries or its consumer.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Makes a consumer delivering to a fresh inbox subscribed by this process, starting where
    /// the watch stands; the previous one (if any) is deleted first.
    fn consume(&mut self) -> Result<(), JsError> {
        self.stop();
        // Whatever happens below, the consumer is to be heard from anew.
        self.last_heard = Instant::now();
        self.needs_reset = true;
        let inbox = format!("_INBOX.{}", random_token(22));
        let sub = self
            .js
            .client()
            .subscribe(&inbox)
            .map_err(|err| match err {
                NatsError::PermissionDenied { subject, .. } => {
                    JsError::PermissionDenied { subject }
                }
                other => JsError::Nats(other),
            })?;
        let body = create_request(
            &self.stream,
            &inbox,
            &self.filter_subject,
            self.ordered.start(),
            self.headers_only,
        );
        let created: ConsumerCreated = self
            .js
            .request(
                &format!("CONSUMER.CREATE.{}", self.stream),
                &body,
                Some(&self.stream),
            )
            .map_err(|err| err.in_bucket(&self.bucket))?;
        self.ordered.created(created.num_pending);
        self.sub = Some(sub);
        self.consumer = Some(created.name);
        self.last_heard = Instant::now();
        self.needs_reset = false;
        Ok(())
    }

    /// Deletes the consumer (without waiting: the server would delete it anyway once nobody
    /// listens on its inbox) and unsubscribes.
    fn stop(&mut self) {
        if let Some(name) = self.consumer.take() {
            let subject = self
                .js
                .api_subject(&format!("CONSUMER.DELETE.{}.{name}", self.stream));
            // A failure leaves the consumer to the server's inactivity threshold.
            let _ = self.js.client().publish(&subject, b"");
        }
        self.sub = None;
    }
}

impl Drop for KvWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

//! [`PullConsumer`]: a durable pull consumer with explicit acks (see `durable.rs` for the wire
//! side). Its pulls' messages come to an inbox the consuming process subscribes to, so the process
//! that made it is the one that fetches.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::api::err_code;
use super::context::JetStream;
use super::durable::{self, classify, DeliverFrom, DurableConfig, JsMessage, Pulled};
use super::error::JsError;
use super::names::check_stream_name;
use crate::nats::client::Subscription;
use crate::nats::options::{random_token, NatsError};

/// How long a fetch that has messages waits for the next one of its pull.
const BATCH_GAP: Duration = Duration::from_millis(5);

/// A durable pull consumer of one stream, bound to the process that made it (its pulls' inbox).
#[derive(Debug)]
pub struct PullConsumer {
    js: JetStream,
    stream: String,
    durable: String,
    inbox: String,
    sub: Subscription,
    /// [`PullConsumer::next`]'s pull: how many messages it may still bring, and until when.
    open_pull: Cell<Option<(usize, Instant)>>,
}

/// The consumer's info, as far as it is read here.
#[derive(Debug, serde::Deserialize)]
struct ConsumerInfo {
    name: String,
    #[serde(default)]
    config: Option<ExistingConfig>,
}

/// The settings of an existing consumer that [`JetStream::durable_consumer`] compares.
#[derive(Debug, Default, serde::Deserialize)]
struct ExistingConfig {
    #[serde(default)]
    filter_subject: String,
    #[serde(default)]
    deliver_policy: String,
    #[serde(default)]
    opt_start_seq: Option<u64>,
    #[serde(default)]
    opt_start_time: Option<String>,
    #[serde(default)]
    ack_wait: u64,
    #[serde(default)]
    max_deliver: i64,
    #[serde(default)]
    max_ack_pending: i64,
}

impl ExistingConfig {
    /// Whether it differs from `config` in a setting that an update changes (all but where it
    /// starts, which the server keeps).
    fn differs_from(&self, config: &DurableConfig) -> bool {
        self.filter_subject != config.filter_subject
            || self.ack_wait != config.ack_wait.as_nanos() as u64
            || self.max_deliver != config.max_deliver
            || self.max_ack_pending != config.max_ack_pending
    }

    /// Where it starts, as it was made (an update must say the same).
    fn deliver_from(&self) -> DeliverFrom {
        match (
            self.deliver_policy.as_str(),
            self.opt_start_seq,
            &self.opt_start_time,
        ) {
            ("by_start_sequence", Some(seq), _) => DeliverFrom::Sequence(seq),
            ("by_start_time", _, Some(time)) => DeliverFrom::Time(time.clone()),
            ("new", ..) => DeliverFrom::New,
            _ => DeliverFrom::All,
        }
    }
}

impl JetStream {
    /// The durable consumer `config.durable` of `stream`: the existing one, which goes on from its
    /// position, or a new one made with `config`. An existing one whose filter subject, `ack_wait`,
    /// `max_deliver` or `max_ack_pending` differ from `config` is updated to `config`'s (where it
    /// starts is kept); an update the server refuses is an error naming both settings, never a
    /// consumer silently left as it was (it would deliver other subjects, or out of order).
    pub fn durable_consumer(
        &self,
        stream: &str,
        config: &DurableConfig,
    ) -> Result<PullConsumer, JsError> {
        check_stream_name(stream)?;
        check_stream_name(&config.durable)?;
        let info = self.request::<ConsumerInfo>(
            &format!("CONSUMER.INFO.{stream}.{}", config.durable),
            b"",
            Some(stream),
        );
        let name = match info {
            Ok(ConsumerInfo {
                name,
                config: Some(existing),
            }) if existing.differs_from(config) => {
                let mut update = config.clone();
                update.deliver_from = existing.deliver_from();
                self.create_durable(stream, &update).map_err(|err| {
                    JsError::Nats(NatsError::Server(format!(
                        "the durable consumer {name:?} of stream {stream:?} exists with filter \
                         {:?}, ack_wait {} ns, max_deliver {}, max_ack_pending {}; updating it to \
                         filter {:?}, ack_wait {} ns, max_deliver {}, max_ack_pending {} failed \
                         (delete it, or replay, to make it again): {err}",
                        existing.filter_subject,
                        existing.ack_wait,
                        existing.max_deliver,
                        existing.max_ack_pending,
                        config.filter_subject,
                        config.ack_wait.as_nanos(),
                        config.max_deliver,
                        config.max_ack_pending,
                    )))
                })?
            }
            Ok(info) => info.name,
            Err(JsError::Api { err_code: code, .. }) if code == err_code::CONSUMER_NOT_FOUND => {
                self.create_durable(stream, config)?
            }
            Err(err) => return Err(err),
        };
        self.bind(stream, name)
    }

    /// A new durable consumer `config.durable` of `stream` made with `config`, the existing one of
    /// that name deleted first: to consume again from `config.deliver_from`.
    pub fn recreate_durable_consumer(
        &self,
        stream: &str,
        config: &DurableConfig,
    ) -> Result<PullConsumer, JsError> {
        check_stream_name(stream)?;
        check_stream_name(&config.durable)?;
        match self.delete_consumer(stream, &config.durable) {
            Ok(()) => {}
            Err(JsError::Api { err_code: code, .. }) if code == err_code::CONSUMER_NOT_FOUND => {}
            Err(err) => return Err(err),
        }
        let name = self.create_durable(stream, config)?;
        self.bind(stream, name)
    }

    /// Deletes the durable consumer `durable` of `stream` (its position is forgotten).
    pub fn delete_consumer(&self, stream: &str, durable: &str) -> Result<(), JsError> {
        check_stream_name(stream)?;
        check_stream_name(durable)?;
        self.request::<serde_json::Value>(
            &format!("CONSUMER.DELETE.{stream}.{durable}"),
            b"",
            Some(stream),
        )
        .map(|_| ())
    }

    fn create_durable(&self, stream: &str, config: &DurableConfig) -> Result<String, JsError> {
        let created: ConsumerInfo = self.request(
            &format!("CONSUMER.CREATE.{stream}.{}", config.durable),
            &durable::create_request(stream, config),
            Some(stream),
        )?;
        Ok(created.name)
    }

    fn bind(&self, stream: &str, durable: String) -> Result<PullConsumer, JsError> {
        let inbox = format!("_INBOX.{}", random_token(22));
        let sub = self.client().subscribe(&inbox).map_err(|err| match err {
            NatsError::PermissionDenied { subject, .. } => JsError::PermissionDenied { subject },
            other => JsError::Nats(other),
        })?;
        Ok(PullConsumer {
            js: self.clone(),
            stream: stream.to_owned(),
            durable,
            inbox,
            sub,
            open_pull: Cell::new(None),
        })
    }
}

impl PullConsumer {
    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.durable
    }

    /// Up to `batch` messages, waiting at most `wait` for the first ones: fewer (or none) when the
    /// stream has no more for now. Messages of an earlier pull that came late are taken too.
    /// The pull stays open on the server until `wait` even when this returns early (a short
    /// silence ends a batch), so its later messages come to the next call, and several pulls
    /// can be open at once: [`PullConsumer::next`] keeps one open at a time.
    pub fn fetch(&self, batch: usize, wait: Duration) -> Result<Vec<JsMessage>, JsError> {
        let deadline = self.pull(batch, wait)?;
        let mut messages = Vec::new();
        while messages.len() < batch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // A pull's messages come back to back: once one is here, a short silence ends it
            // (rather than waiting out `wait` for a batch the stream cannot fill).
            let left = if messages.is_empty() {
                left
            } else {
                left.min(BATCH_GAP)
            };
            match self.sub.next_timeout(left) {
                Ok(msg) => match classify(msg) {
                    Pulled::Message(message) => messages.push(message),
                    Pulled::Ended(404 | 408, _) => break,
                    Pulled::Ended(code, description) if messages.is_empty() => {
                        return Err(self.pull_failed(code, &description))
                    }
                    Pulled::Ended(..) => break,
                    Pulled::Ignore => {}
                },
                Err(NatsError::TimedOut { .. }) => break,
                Err(err) => return Err(JsError::Nats(err)),
            }
        }
        Ok(messages)
    }

    /// The next message, waiting at most about `wait` (`None`: the pull ended without one; an
    /// error if nobody ended it: the consumer or its stream is gone, or the server away). One pull of up to
    /// `batch` messages stands at a time; it is asked for only when the last one is over (its
    /// messages all came, or it expired). A message is taken as it comes: with
    /// `max_ack_pending: 1` the server sends the next only once this one is acked, so the pull
    /// delivers them one after the other, in stream order, without a round trip each.
    pub fn next(&self, batch: usize, wait: Duration) -> Result<Option<JsMessage>, JsError> {
        let now = Instant::now();
        let (left, deadline) = match self.open_pull.get() {
            Some((left, deadline)) if left > 0 && deadline > now => (left, deadline),
            _ => (batch.max(1), self.pull(batch, wait)?),
        };
        self.open_pull.set(Some((left, deadline)));
        // The server ends a pull that expires with a 408; silence past its end means nobody took
        // it (the consumer or the stream is gone, the server away): an error, for the caller to
        // find or make the consumer again.
        let unanswered = || {
            JsError::Nats(NatsError::Server(format!(
                "no answer to a pull from consumer {:?} of stream {:?} (gone?)",
                self.durable, self.stream
            )))
        };
        loop {
            let wait_left = deadline.saturating_duration_since(Instant::now());
            if wait_left.is_zero() {
                self.open_pull.set(None);
                return Err(unanswered());
            }
            match self.sub.next_timeout(wait_left) {
                Ok(msg) => match classify(msg) {
                    Pulled::Message(message) => {
                        self.open_pull.set(Some((left - 1, deadline)));
                        return Ok(Some(message));
                    }
                    // Over (possibly an earlier pull's end, which costs one pull more).
                    Pulled::Ended(404 | 408, _) => {
                        self.open_pull.set(None);
                        return Ok(None);
                    }
                    Pulled::Ended(code, description) => {
                        self.open_pull.set(None);
                        return Err(self.pull_failed(code, &description));
                    }
                    Pulled::Ignore => {}
                },
                Err(NatsError::TimedOut { .. }) => {
                    self.open_pull.set(None);
                    return Err(unanswered());
                }
                Err(err) => {
                    self.open_pull.set(None);
                    return Err(JsError::Nats(err));
                }
            }
        }
    }

    /// Asks the server for up to `batch` messages within `wait`; returns when to stop waiting for
    /// them: the server ends the pull by `wait`, plus a little for a message on its way.
    fn pull(&self, batch: usize, wait: Duration) -> Result<Instant, JsError> {
        let subject = self.js.api_subject(&format!(
            "CONSUMER.MSG.NEXT.{}.{}",
            self.stream, self.durable
        ));
        self.js
            .client()
            .publish_with_reply(&subject, &self.inbox, durable::next_request(batch, wait))
            .map_err(JsError::Nats)?;
        Ok(Instant::now() + wait + Duration::from_millis(500))
    }

    /// A pull the server ended with a status other than "nothing (more) for now".
    fn pull_failed(&self, code: u16, description: &str) -> JsError {
        JsError::Api {
            code,
            err_code: 0,
            description: format!(
                "pulling from consumer {:?} of stream {:?}: {description}",
                self.durable, self.stream
            ),
        }
    }

    /// Acks `message` and waits for the server to confirm it took the ack: it will not be
    /// delivered again.
    pub fn ack(&self, message: &JsMessage) -> Result<(), JsError> {
        self.js
            .client()
            .request(&message.reply, durable::ACK, self.js.timeout())
            .map(|_| ())
            .map_err(JsError::Nats)
    }

    /// Acks `message` without waiting for the server's confirmation: an ack that is lost makes
    /// the server deliver the message again after `ack_wait`.
    pub fn ack_unconfirmed(&self, message: &JsMessage) -> Result<(), JsError> {
        self.answer(message, durable::ACK)
    }

    /// Asks for `message` to be delivered again after `delay` (counts toward `max_deliver`).
    pub fn nak(&self, message: &JsMessage, delay: Duration) -> Result<(), JsError> {
        self.answer(message, durable::nak(delay))
    }

    /// Tells the server never to deliver `message` again.
    pub fn term(&self, message: &JsMessage) -> Result<(), JsError> {
        self.answer(message, durable::TERM)
    }

    /// Publishes `body` to `message`'s ack subject, without waiting for a confirmation.
    fn answer(&self, message: &JsMessage, body: impl AsRef<[u8]>) -> Result<(), JsError> {
        self.js
            .client()
            .publish(&message.reply, body.as_ref())
            .map_err(JsError::Nats)
    }
}

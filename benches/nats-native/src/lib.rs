//! What the native benchmarks share: the async-nats echo service every NATS row is held against.

use futures::StreamExt;

/// Answers every request on `subject` with its own payload, on a connection of its own, until the
/// program ends; returns once the subscription is in place at the server.
pub async fn serve_echo(url: &str, subject: &'static str) {
    let responder = async_nats::connect(url).await.expect("connects");
    let mut sub = responder.subscribe(subject).await.expect("subscribes");
    let answering = responder.clone();
    tokio::spawn(async move {
        while let Some(message) = sub.next().await {
            if let Some(reply) = message.reply {
                let _ = answering.publish(reply, message.payload).await;
            }
        }
    });
    responder.flush().await.expect("flushes");
}

//! The front door's replies as a caller reads them, on Lunatic (a handle whose agent lives on
//! another node, `cluster::remote`) and natively (the generated clients, `client`): one reading
//! of `{"ok": ..}` / `{"error": {..}}` for both, so that a failure means the same everywhere.
//! What the front door sends is described in `nats::agents`.

use std::time::Duration;

use serde_json::Value;

use crate::error::CallFailure;

/// What a front-door reply says: the handler's answer as JSON, or the failure it reports.
/// `timeout` is the caller's own (a `timed_out` failure names it).
pub(crate) fn decode_reply(reply: &[u8], timeout: Duration) -> Result<Value, CallFailure> {
    let undecodable =
        |why: String| CallFailure::Unencodable(format!("undecodable reply from its node: {why}"));
    let mut reply: serde_json::Map<String, Value> =
        serde_json::from_slice(reply).map_err(|err| undecodable(err.to_string()))?;
    if let Some(answer) = reply.remove("ok") {
        return Ok(answer);
    }
    let Some(Value::Object(error)) = reply.remove("error") else {
        return Err(undecodable("neither \"ok\" nor \"error\"".into()));
    };
    let text = |field: &str| error.get(field).and_then(Value::as_str).map(str::to_owned);
    let kind = text("kind").unwrap_or_default();
    let message = text("message").unwrap_or_default();
    Err(match (kind.as_str(), text("reason")) {
        // A failure of the call itself, as the owner's agent reported it.
        (_, Some(reason)) => {
            CallFailure::from_wire(&reason, text("detail").unwrap_or(message), timeout)
        }
        ("moved", None) => CallFailure::Moved(message),
        ("unavailable" | "overloaded", None) => {
            CallFailure::Unavailable(format!("{kind}: {message}"))
        }
        ("not_running", None) => CallFailure::NotRunning,
        ("invalid_key", None) => CallFailure::InvalidKey(message),
        ("unknown_handler", None) => CallFailure::UnknownHandler(message),
        ("bad_arguments", None) => CallFailure::BadArguments(message),
        _ => CallFailure::Refused { kind, message },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn an_answer_is_the_value_under_ok() {
        assert_eq!(
            decode_reply(br#"{"ok":{"Ok":3}}"#, TIMEOUT),
            Ok(serde_json::json!({"Ok": 3}))
        );
        assert_eq!(decode_reply(br#"{"ok":null}"#, TIMEOUT), Ok(Value::Null));
    }

    #[test]
    fn the_front_doors_refusals_are_typed() {
        let refusal = |kind: &str| {
            let reply = serde_json::json!({"error": {"kind": kind, "message": "why"}});
            decode_reply(&serde_json::to_vec(&reply).unwrap(), TIMEOUT).unwrap_err()
        };
        assert_eq!(
            refusal("invalid_key"),
            CallFailure::InvalidKey("why".into())
        );
        assert_eq!(
            refusal("unknown_handler"),
            CallFailure::UnknownHandler("why".into())
        );
        assert_eq!(
            refusal("bad_arguments"),
            CallFailure::BadArguments("why".into())
        );
        assert_eq!(
            refusal("start_failed"),
            CallFailure::Refused {
                kind: "start_failed".into(),
                message: "why".into()
            }
        );
    }

    #[test]
    fn a_failed_call_names_its_reason() {
        let reply = br#"{"error":{"kind":"call_failed","applied":false,"reason":"panicked","detail":"boom","message":"x"}}"#;
        assert_eq!(
            decode_reply(reply, TIMEOUT),
            Err(CallFailure::Panicked("boom".into()))
        );
        let reply = br#"{"error":{"kind":"call_failed","applied":null,"reason":"timed_out","message":"x"}}"#;
        assert_eq!(
            decode_reply(reply, TIMEOUT),
            Err(CallFailure::TimedOut(TIMEOUT))
        );
    }

    #[test]
    fn garbage_is_an_undecodable_reply_not_a_panic() {
        for reply in [&b"not json"[..], b"[]", b"{}", br#"{"error":3}"#] {
            assert!(matches!(
                decode_reply(reply, TIMEOUT),
                Err(CallFailure::Unencodable(_))
            ));
        }
    }
}

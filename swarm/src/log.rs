//! Structured logs: one line per event on stderr, with a level, an event name and fields, as
//! text (the default) or as JSON lines.
//!
//! ```text
//! swarm: level=warn event=supervisor.child_crashed supervisor=ChatService child=lobby msg="`lobby` exited abnormally (crash or kill); restarting"
//! {"level":"warn","event":"supervisor.child_crashed","supervisor":"ChatService","child":"lobby","msg":"..."}
//! ```
//!
//! Set per node through the environment, which every process of a Lunatic node reads once:
//! `SWARM_LOG` is the lowest level written (`error`, `warn`, `info` (the default), `debug`, or
//! `off`); `SWARM_LOG_FORMAT=json` writes JSON lines. `SWARM_BACKTRACE=1` adds a backtrace to
//! an agent's crash event (Rust's own panic output); without it a crash is one event with its
//! panic message and location.
//!
//! Events swarm writes: `supervisor.*` (a child started, restarted, crashed, a give-up, a
//! shutdown), `agent.crashed` (a handler's panic, once), `agent.save_failed` and
//! `agent.stale_write_refused`, `store.*` (a store's errors and recoveries), `nats.*`
//! (disconnects and reconnects), `metrics.*` (the operations listener).

// Natively only the file store logs; the rest serves the Lunatic runtime (and is tested here).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::cell::Cell;

/// How much an event matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed and was not recovered here.
    Error = 1,
    /// Something failed and the runtime recovered (a crash restarted, a reconnect).
    Warn = 2,
    /// What an operator wants to see in a normal run (starts, stops).
    Info = 3,
    /// Detail.
    Debug = 4,
}

impl Level {
    /// The level's name in a line.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// A process' log settings, from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    /// The lowest level written (0: nothing).
    max: u8,
    json: bool,
    backtrace: bool,
}

impl Settings {
    fn from_env() -> Settings {
        Settings::parse(
            std::env::var("SWARM_LOG").ok().as_deref(),
            std::env::var("SWARM_LOG_FORMAT").ok().as_deref(),
            std::env::var("SWARM_BACKTRACE").ok().as_deref(),
        )
    }

    fn parse(level: Option<&str>, format: Option<&str>, backtrace: Option<&str>) -> Settings {
        let max = match level.map(str::trim).map(str::to_ascii_lowercase).as_deref() {
            Some("off" | "none") => 0,
            Some("error") => Level::Error as u8,
            Some("warn" | "warning") => Level::Warn as u8,
            Some("debug" | "trace") => Level::Debug as u8,
            // Unset, `info`, or a value we do not know: the default.
            _ => Level::Info as u8,
        };
        Settings {
            max,
            json: format.is_some_and(|format| format.trim().eq_ignore_ascii_case("json")),
            backtrace: backtrace.is_some_and(|value| !value.is_empty() && value != "0"),
        }
    }
}

thread_local! {
    // A Lunatic process is single-threaded and reads the environment once.
    static SETTINGS: Cell<Option<Settings>> = const { Cell::new(None) };
}

fn settings() -> Settings {
    SETTINGS.with(|cached| {
        cached.get().unwrap_or_else(|| {
            let settings = Settings::from_env();
            cached.set(Some(settings));
            settings
        })
    })
}

/// Whether crash events should carry a backtrace (`SWARM_BACKTRACE=1`).
pub fn backtraces() -> bool {
    settings().backtrace
}

/// Writes one event: `event` names it (`area.what`), `fields` are its data, `message` says it
/// in words.
pub fn event(level: Level, event: &str, fields: &[(&str, &str)], message: &str) {
    let settings = settings();
    if level as u8 > settings.max {
        return;
    }
    eprintln!(
        "{}",
        format_line(settings.json, level, event, fields, message)
    );
}

/// An [`event`] at [`Level::Error`].
pub fn error(name: &str, fields: &[(&str, &str)], message: &str) {
    event(Level::Error, name, fields, message)
}

/// An [`event`] at [`Level::Warn`].
pub fn warn(name: &str, fields: &[(&str, &str)], message: &str) {
    event(Level::Warn, name, fields, message)
}

/// An [`event`] at [`Level::Info`].
pub fn info(name: &str, fields: &[(&str, &str)], message: &str) {
    event(Level::Info, name, fields, message)
}

/// `text` cut to at most `max` bytes (on a character boundary), saying how long it was.
pub fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}... ({} bytes, cut)", &text[..end], text.len()))
}

/// One line, without its newline.
fn format_line(
    json: bool,
    level: Level,
    event: &str,
    fields: &[(&str, &str)],
    message: &str,
) -> String {
    if json {
        let mut object = serde_json::Map::new();
        object.insert("level".into(), level.as_str().into());
        object.insert("event".into(), event.into());
        for (name, value) in fields {
            object.insert((*name).into(), (*value).into());
        }
        object.insert("msg".into(), message.into());
        return serde_json::Value::Object(object).to_string();
    }
    let mut line = format!("swarm: level={} event={event}", level.as_str());
    for (name, value) in fields {
        line.push(' ');
        line.push_str(name);
        line.push('=');
        push_value(&mut line, value);
    }
    line.push_str(" msg=");
    push_value(&mut line, message);
    line
}

/// A logfmt value: bare when it has no space, quote or `=`, else quoted with escapes (so a
/// value never spans lines).
fn push_value(line: &mut String, value: &str) {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '=' && !c.is_control());
    if bare {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => line.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_are_one_line_with_quoted_values() {
        let line = format_line(
            false,
            Level::Warn,
            "agent.crashed",
            &[("kind", "chat-room"), ("key", "lobby")],
            "boom\nsecond line \"quoted\"",
        );
        assert_eq!(
            line,
            "swarm: level=warn event=agent.crashed kind=chat-room key=lobby \
             msg=\"boom\\nsecond line \\\"quoted\\\"\""
        );
    }

    #[test]
    fn json_lines_parse_back() {
        let line = format_line(
            true,
            Level::Info,
            "supervisor.child_started",
            &[("child", "a\"b")],
            "started",
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "info");
        assert_eq!(value["event"], "supervisor.child_started");
        assert_eq!(value["child"], "a\"b");
        assert_eq!(value["msg"], "started");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééé", 3), "é... (6 bytes, cut)");
    }

    #[test]
    fn settings_from_the_environment() {
        let default = Settings::parse(None, None, None);
        assert_eq!(
            (default.max, default.json, default.backtrace),
            (3, false, false)
        );
        let set = Settings::parse(Some("WARN"), Some("json"), Some("1"));
        assert_eq!((set.max, set.json, set.backtrace), (2, true, true));
        assert_eq!(Settings::parse(Some("off"), None, Some("0")).max, 0);
        assert!(!Settings::parse(None, None, Some("0")).backtrace);
    }
}

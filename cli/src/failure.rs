//! What can go wrong, as the exit code a script sees and the one line a person reads.
//!
//! Every failure reaches `main` as a [`Failure`]; nothing panics on input or I/O, so a user never
//! sees a backtrace. The codes follow `nats`/`kubectl`-style tools: 0 done, 1 the operation
//! failed, 2 the input was wrong, 3 no server to talk to.

use std::fmt;
use std::io;

/// The process exit code of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The call or operation failed: the agent answered an error, no answer in time.
    Failed = 1,
    /// Bad input: an unknown kind or handler, arguments that are not a JSON object or do not
    /// match the handler's schema, a bad key, namespace or option.
    Usage = 2,
    /// No NATS server reachable (or it refused the credentials).
    Connect = 3,
    /// The reader of our output went away (`swarm nodes | head`): stop quietly, as `cat` does.
    Quiet = 0,
}

/// A failure: its exit code and the line to print on stderr (after `swarm: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Failed,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    pub fn connect(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Connect,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Writing our own output failed: a closed pipe ends the program quietly, anything else (a full
/// disk behind a redirect) is a failure.
impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Failure {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Failure {
                exit: Exit::Quiet,
                message: String::new(),
            }
        } else {
            Failure::failed(format!("cannot write the output: {err}"))
        }
    }
}

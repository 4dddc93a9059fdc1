//! Errors every layer shares: [`ParseError`] for text a user wrote (a
//! prefix, a VNI list, an allowlist file, a route, a config value, a
//! capture file's header), and [`error_chain`], which prints an error with
//! its sources on one line.

use std::fmt;

/// Text that does not say what it should: the message names what was
/// expected and what was found, on one line, for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    message: String,
}

impl ParseError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The same error said of `place` (a file and line, a flag, a key):
    /// `place: message`.
    #[must_use]
    pub fn at(self, place: impl fmt::Display) -> Self {
        Self {
            message: format!("{place}: {}", self.message),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for ParseError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ParseError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// `error` and each of its sources, joined with `: ` (as anyhow's `{:#}`
/// prints a chain): for a log line or a message that must stay on one
/// line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_and_places_stay_on_one_line() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
        let p = ParseError::new("\"x\" is not a number").at("--vni");
        assert_eq!(p.to_string(), "--vni: \"x\" is not a number");
    }
}

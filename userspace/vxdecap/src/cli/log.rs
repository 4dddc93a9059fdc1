//! The command line's log on stderr: the library's console lines
//! ([`vxdecap::report::CONSOLE`]) as `vxdecap: …` (`vxdecap: warning: …` at
//! WARN), always; every other tracing event in tracing's own format, at
//! the level `VXDECAP_LOG` asks for (default `warn`).

use std::fmt::{self, Write as _};
use std::io::{IsTerminal as _, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{filter, EnvFilter, Layer};
use vxdecap::report::CONSOLE;

/// Installs the log for the rest of the process.
pub(crate) fn init() {
    let console = ConsoleLines.with_filter(filter::filter_fn(|m| m.target() == CONSOLE));
    let level = EnvFilter::try_from_env("VXDECAP_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let diagnostics = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(level)
        .with_filter(filter::filter_fn(|m| m.target() != CONSOLE));
    tracing_subscriber::registry()
        .with(console)
        .with(diagnostics)
        .init();
}

/// Prints a console event's message as one `vxdecap: …` line.
struct ConsoleLines;

impl<S: Subscriber> Layer<S> for ConsoleLines {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut line = String::from("vxdecap: ");
        if *event.metadata().level() == Level::WARN {
            line.push_str("warning: ");
        }
        event.record(&mut Message(&mut line));
        line.push('\n');
        // stderr may be gone (a closed terminal): nothing to tell then.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Appends an event's `message` field.
struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

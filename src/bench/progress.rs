//! Progress bars for the benches (indicatif) on a terminal; on anything else (logs, CI, a
//! pipe) nothing is drawn and the benches print their plain lines as before.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Whether bars are drawn: stderr is a terminal.
pub fn on_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// A bar of `len` steps with `template` (indicatif's template syntax), or None off a
/// terminal.
pub fn bar(len: u64, template: &str) -> Option<ProgressBar> {
    on_terminal().then(|| {
        let b = ProgressBar::new(len);
        b.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    })
}

/// A bar that fills over `secs` seconds of wall time while a phase runs, ticked by its own
/// task; [`TimedBar::finish`] clears it. Nothing off a terminal.
pub struct TimedBar {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TimedBar {
    /// Starts the bar, labelled `what`.
    pub fn start(secs: u64, what: &str) -> TimedBar {
        let bar = bar(
            secs.max(1),
            &format!("  {what} {{bar:40}} {{pos}}/{{len}} s"),
        );
        let task = bar.clone().map(|b| {
            tokio::spawn(async move {
                let t0 = Instant::now();
                loop {
                    b.set_position(t0.elapsed().as_secs());
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        });
        TimedBar { bar, task }
    }

    /// Stops ticking and clears the bar.
    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

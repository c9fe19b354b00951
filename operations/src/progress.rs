//! Progress bars for long work, on a terminal only.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Work this large gets a bar; smaller work finishes before one would help.
const MIN_ITEMS_FOR_BAR: u64 = 200_000;

pub fn bar(total: u64, what: &str) -> ProgressBar {
    if total < MIN_ITEMS_FOR_BAR || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = format!("{what} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, {{eta}} left)");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

/// A count of work whose total is unknown until it is done (the lines of
/// a file being read), with its rate; on a terminal only.
pub fn counter(what: &str, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let counter = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let template = format!("{what} {{spinner}} {{human_pos}} {unit} ({{per_sec}}, {{elapsed}})");
    counter.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_spinner()));
    counter
}

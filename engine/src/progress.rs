//! The run's progress: a bar on a terminal, plain lines otherwise (a log file, CI).

use std::io::IsTerminal;

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// All the run's optimiser steps: the plain lines say "iter I/TOTAL" (which
    /// scripts/transfer_tables.sh reads for its live line).
    total: u64,
    /// Ranks other than 0 of a data-parallel run stay silent (rank 0 speaks for the run).
    quiet: bool,
}

impl Progress {
    /// `total` optimiser steps, `done` of them already (a resumed run).
    pub fn new(total: u64, done: u64) -> Self {
        let quiet = !super::data_parallel::is_main_rank();
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_position(done);
            bar
        });
        Progress { bar, total, quiet }
    }

    pub fn update(&self, iter: u64, epoch: u64, loss: f64, lr: f64, images_per_s: f64) {
        if self.quiet {
            return;
        }
        let msg = format!("loss {loss:.4} lr {lr:.4} {images_per_s:.0} img/s");
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(format!("epoch {epoch}"));
                bar.set_position(iter);
                bar.set_message(msg);
            }
            None => eprintln!("epoch {epoch} iter {iter}/{}: {msg}", self.total),
        }
    }

    pub fn println(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress through a list of items (`predict --images`): a bar with the rate and what is
/// left on a terminal, nothing otherwise (the command prints its own summary).
pub struct ItemsProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl ItemsProgress {
    pub fn new(total: u64, what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "{what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}}"
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        ItemsProgress { bar }
    }

    pub fn advance(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(done);
        }
    }

    /// A line above the bar (or on stdout when there is none).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

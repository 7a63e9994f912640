//! Progress of a long transfer, logged to stderr (the host shows a plugin's logs).

use std::time::{Duration, Instant};

/// How often a running transfer reports.
const INTERVAL: Duration = Duration::from_secs(5);

/// Bytes moved by one transfer, and when they were last reported.
#[derive(Debug)]
pub struct Progress {
    label: String,
    started: Instant,
    reported: Instant,
    bytes: u64,
}

impl Progress {
    /// A transfer named `label` (operation, direction and path) starting now.
    pub fn new(label: String) -> Self {
        let now = Instant::now();
        Self {
            label,
            started: now,
            reported: now,
            bytes: 0,
        }
    }

    /// Counts `bytes` more; reports when the last report is old enough.
    pub fn advance(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        if self.reported.elapsed() >= INTERVAL {
            self.reported = Instant::now();
            tracing::info!(
                "{}: {} so far",
                self.label,
                rate(self.bytes, self.started.elapsed())
            );
        }
    }

    /// Reports the total.
    pub fn finish(&self) {
        tracing::info!(
            "{}: {} in all",
            self.label,
            rate(self.bytes, self.started.elapsed())
        );
    }
}

/// `12.0 MiB in 1.5 s (8.0 MiB/s)`.
fn rate(bytes: u64, elapsed: Duration) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mebibytes = bytes as f64 / MIB;
    let seconds = elapsed.as_secs_f64();
    let per_second = if seconds > 0.0 {
        mebibytes / seconds
    } else {
        0.0
    };
    format!("{mebibytes:.1} MiB in {seconds:.1} s ({per_second:.1} MiB/s)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_sentences() {
        assert_eq!(
            rate(12 << 20, Duration::from_millis(1500)),
            "12.0 MiB in 1.5 s (8.0 MiB/s)"
        );
        assert_eq!(rate(0, Duration::ZERO), "0.0 MiB in 0.0 s (0.0 MiB/s)");
    }
}

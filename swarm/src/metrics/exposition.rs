//! Prometheus' text exposition format (version 0.0.4), written by hand: a few families of
//! counters, gauges and histograms need no client library, and the format is small (one `# HELP`
//! and one `# TYPE` line per family, then one line per sample). Pure, so it is tested natively;
//! `tests/support/metrics_check.py` parses a live node's answer with `prometheus_client`'s parser.

use serde::{Deserialize, Serialize};

/// The `Content-Type` of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histograms' buckets, in nanoseconds: 10 µs to 10 s, so that a
/// local call (a few µs), a store write (ms) and a call across NATS (hundreds of µs to ms) each
/// land in buckets of their own.
pub const BOUNDS_NANOS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// A latency histogram: counts per bucket (not cumulative: the last slot holds what is past the
/// last bound), the sum and the count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// `buckets[i]` counts observations in `(BOUNDS_NANOS[i-1], BOUNDS_NANOS[i]]`; the extra last
    /// one those above every bound.
    pub buckets: [u64; BOUNDS_NANOS.len() + 1],
    /// The sum of every observation, in nanoseconds.
    pub sum_nanos: u64,
    /// Observations.
    pub count: u64,
}

impl Histogram {
    /// Counts one observation of `nanos` nanoseconds.
    #[inline]
    pub fn observe(&mut self, nanos: u64) {
        let slot = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[slot] += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
        self.count += 1;
    }

    /// Adds another histogram's counts to this one.
    pub fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine += theirs;
        }
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
        self.count += other.count;
    }
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Only goes up (resets when the node restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

/// The text of one scrape, built family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Type, help: &str) {
        let kind = match kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        };
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        // HELP text escapes only `\` and newlines.
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push('\n');
        self.out.push_str("# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        self.value(value);
        self.out.push('\n');
    }

    /// The samples of one histogram: cumulative `_bucket`s with `le`, `_sum` (seconds), `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let mut cumulative = 0;
        for (slot, count) in histogram.buckets.iter().enumerate() {
            cumulative += count;
            let le = match BOUNDS_NANOS.get(slot) {
                Some(&bound) => format_seconds(bound),
                None => "+Inf".to_owned(),
            };
            self.out.push_str(name);
            self.out.push_str("_bucket");
            self.labels(labels, Some(&le));
            self.out.push(' ');
            self.value(cumulative as f64);
            self.out.push('\n');
        }
        let sum = histogram.sum_nanos as f64 / 1e9;
        self.out.push_str(name);
        self.out.push_str("_sum");
        self.labels(labels, None);
        self.out.push(' ');
        self.value(sum);
        self.out.push('\n');
        self.out.push_str(name);
        self.out.push_str("_count");
        self.labels(labels, None);
        self.out.push(' ');
        self.value(histogram.count as f64);
        self.out.push('\n');
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(name);
            self.out.push_str("=\"");
            // Label values escape `\`, `"` and newlines.
            for c in value.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn value(&mut self, value: f64) {
        use std::fmt::Write;
        if value.is_nan() {
            self.out.push_str("NaN");
        } else if value.is_infinite() {
            self.out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        } else if value.fract() == 0.0 && value.abs() < 1e15 {
            // Counts print as integers (`12`, not `12.0`), as every Prometheus client does.
            let _ = write!(self.out, "{}", value as i64);
        } else {
            let _ = write!(self.out, "{value}");
        }
    }
}

/// A bucket bound in seconds, as `le` shows it (`1e-05` style is valid too, but `0.00001` reads
/// better and parses the same).
fn format_seconds(nanos: u64) -> String {
    let seconds = nanos as f64 / 1e9;
    format!("{seconds}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let mut histogram = Histogram::default();
        histogram.observe(5_000); // first bucket (10 µs)
        histogram.observe(10_000); // still the first: bounds are inclusive
        histogram.observe(3_000_000); // 5 ms
        histogram.observe(20_000_000_000); // past the last bound
        let mut text = Exposition::default();
        text.family("x_seconds", Type::Histogram, "h");
        text.histogram("x_seconds", &[("kind", "k")], &histogram);
        let text = text.finish();
        assert!(
            text.contains("x_seconds_bucket{kind=\"k\",le=\"0.00001\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{kind=\"k\",le=\"0.005\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{kind=\"k\",le=\"10\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{kind=\"k\",le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_count{kind=\"k\"} 4\n"), "{text}");
        assert!(
            text.contains("x_seconds_sum{kind=\"k\"} 20.003015\n"),
            "{text}"
        );
        assert!(text.starts_with("# HELP x_seconds h\n# TYPE x_seconds histogram\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut text = Exposition::default();
        text.family("y_total", Type::Counter, "a \\ b\nc");
        text.sample("y_total", &[("child", "a\"b\\c\nd")], 3.0);
        text.sample("y_total", &[], 0.5);
        assert_eq!(
            text.finish(),
            "# HELP y_total a \\\\ b\\nc\n# TYPE y_total counter\n\
             y_total{child=\"a\\\"b\\\\c\\nd\"} 3\ny_total 0.5\n"
        );
    }
}

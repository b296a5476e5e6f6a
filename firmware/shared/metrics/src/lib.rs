//! Counters and gauges shared by the roles, rendered in the Prometheus text format.
//!
//! A counter is a plain `AtomicU64` behind an `Arc`: the hot paths (relay threads, the SIP
//! proxy) increment it with a relaxed add and never touch the registry again. The registry
//! is only locked when a metric is created or when the endpoint renders, both rare.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// A counter that belongs to no registry (tests, or values summed elsewhere).
    pub fn detached() -> Self {
        Self::default()
    }
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (open connections, allocations).
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn detached() -> Self {
        Self::default()
    }
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
enum Value {
    Counter(Counter),
    Gauge(Gauge),
}

#[derive(Debug)]
struct Series {
    name: String,
    help: String,
    labels: Vec<(String, String)>,
    value: Value,
}

/// The set of metrics one edged process exports.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    series: Arc<Mutex<Vec<Series>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or returns the already registered) counter `name` with these labels.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        match self.get_or_insert(name, help, labels, || Value::Counter(Counter::default())) {
            Value::Counter(c) => c,
            // A name registered once as a gauge stays one; hand back a counter nobody reads
            // rather than panic in a role's start-up.
            Value::Gauge(_) => Counter::detached(),
        }
    }

    /// Registers (or returns) gauge `name` with these labels.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        match self.get_or_insert(name, help, labels, || Value::Gauge(Gauge::default())) {
            Value::Gauge(g) => g,
            Value::Counter(_) => Gauge::detached(),
        }
    }

    fn get_or_insert(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Value,
    ) -> Value {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = series.iter().find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        }) {
            return s.value.clone();
        }
        let value = make();
        series.push(Series {
            name: name.to_owned(),
            help: help.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value: value.clone(),
        });
        value
    }

    /// Renders every series in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut order: Vec<&Series> = series.iter().collect();
        // Group by name so HELP/TYPE appear once per family, as the format requires.
        order.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = String::new();
        let mut last: Option<&str> = None;
        for s in order {
            if last != Some(s.name.as_str()) {
                let kind = match s.value {
                    Value::Counter(_) => "counter",
                    Value::Gauge(_) => "gauge",
                };
                let _ = writeln!(out, "# HELP {} {}", s.name, escape_help(&s.help));
                let _ = writeln!(out, "# TYPE {} {}", s.name, kind);
                last = Some(s.name.as_str());
            }
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{}=\"{}\"", k, escape_label(v));
                }
                out.push('}');
            }
            let _ = match &s.value {
                Value::Counter(c) => writeln!(out, " {}", c.get()),
                Value::Gauge(g) => writeln!(out, " {}", g.get()),
            };
        }
        out
    }

    /// Sum of every series of `name` (e.g. a per-thread counter), for status summaries.
    pub fn sum(&self, name: &str) -> u64 {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series
            .iter()
            .filter(|s| s.name == name)
            .map(|s| match &s.value {
                Value::Counter(c) => c.get(),
                Value::Gauge(g) => g.get().max(0) as u64,
            })
            .sum()
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_once_with_labels() {
        let r = Registry::new();
        let a = r.counter(
            "edged_relay_packets_total",
            "Packets relayed",
            &[("thread", "0")],
        );
        let b = r.counter(
            "edged_relay_packets_total",
            "Packets relayed",
            &[("thread", "1")],
        );
        let g = r.gauge("edged_allocations", "Live allocations", &[]);
        a.add(3);
        b.inc();
        g.set(7);
        let text = r.render();
        assert_eq!(
            text.matches("# TYPE edged_relay_packets_total counter")
                .count(),
            1
        );
        assert!(text.contains("edged_relay_packets_total{thread=\"0\"} 3\n"));
        assert!(text.contains("edged_relay_packets_total{thread=\"1\"} 1\n"));
        assert!(text.contains("# TYPE edged_allocations gauge\nedged_allocations 7\n"));
        assert_eq!(r.sum("edged_relay_packets_total"), 4);
    }

    #[test]
    fn same_name_and_labels_share_one_counter() {
        let r = Registry::new();
        let a = r.counter("x_total", "x", &[("k", "v")]);
        let b = r.counter("x_total", "x", &[("k", "v")]);
        a.inc();
        b.inc();
        assert_eq!(a.get(), 2);
        assert_eq!(r.render().matches("x_total{").count(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        let r = Registry::new();
        r.counter("y_total", "line1\nline2", &[("domain", "a\"b\\c")])
            .inc();
        let text = r.render();
        assert!(text.contains("# HELP y_total line1\\nline2"));
        assert!(text.contains("y_total{domain=\"a\\\"b\\\\c\"} 1"));
    }
}

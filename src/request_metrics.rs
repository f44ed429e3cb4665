//! The per-request metrics, kept here rather than in the metrics recorder: the request
//! counter (`portcullis_requests_total`, by `route`, `decision`, `status`) and the latency
//! histogram (`portcullis_request_duration_seconds`, by `route`). The recorder's histogram
//! stores every sample (its value and a timestamp) in an epoch-managed list until upkeep
//! folds it into buckets (~460 instructions and a dozen cache misses a request), and its
//! counters are one atomic per series that every worker thread adds to (a cache line that
//! bounces between cores on every request). Here each thread records into its own shard
//! with plain stores; `/metrics` sums the shards when it renders.
//!
//! A shard or counter has one writer, the thread that asked for it ([`shard`],
//! [`request_counter`]), so it is updated with a load and a store instead of a locked
//! read-modify-write; readers on other threads see each value whole (relaxed atomics) and at
//! worst a request not yet counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus `le`); a last bucket takes the rest.
pub const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The bucket bounds in nanoseconds, for comparing without floating point (rounded: a
/// bound like 0.0005 s is not exact in binary).
const BOUNDS_NANOS: [u64; BUCKETS.len()] = {
    let mut nanos = [0u64; BUCKETS.len()];
    let mut i = 0;
    while i < BUCKETS.len() {
        nanos[i] = (BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    nanos
};

/// One thread's samples for one route.
#[derive(Debug, Default)]
pub struct Shard {
    /// Samples per bucket (not cumulative); the last is above every bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of all samples, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Shard {
    /// Counts one request that took `elapsed`. Only the shard's own thread calls this.
    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BUCKETS.len());
        bump(&self.counts[bucket], 1);
        bump(&self.sum_nanos, nanos);
    }
}

/// Adds to a counter that only this thread writes.
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// Every shard handed out, by route id.
static SHARDS: Mutex<BTreeMap<Box<str>, Vec<Arc<Shard>>>> = Mutex::new(BTreeMap::new());

/// One thread's count of requests of one series.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Counts one request. Only the counter's own thread calls this.
    pub fn increment(&self) {
        bump(&self.0, 1);
    }
}

/// A request series: route, decision, status.
type Series = (Box<str>, &'static str, u16);

/// Every request counter handed out, by series.
static COUNTERS: Mutex<BTreeMap<Series, Vec<Arc<Counter>>>> = Mutex::new(BTreeMap::new());

/// A new request counter of `route`, `decision` and `status` for the calling thread to keep
/// and count into (the gateway caches one per series and thread).
pub fn request_counter(route: &str, decision: &'static str, status: u16) -> Arc<Counter> {
    register(&COUNTERS, (route.into(), decision, status))
}

/// A new shard for `route`, for the calling thread to keep and record into (the gateway
/// caches one per route and thread).
pub fn shard(route: &str) -> Arc<Shard> {
    register(&SHARDS, route.into())
}

/// A new single-writer value under `key` in `registry`, where rendering finds it.
fn register<K: Ord, T: Default>(registry: &Mutex<BTreeMap<K, Vec<Arc<T>>>>, key: K) -> Arc<T> {
    let value = Arc::new(T::default());
    let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
    registry.entry(key).or_default().push(value.clone());
    value
}

/// Both metrics in Prometheus text format: the counter, one series per route, decision and
/// status, then the histogram (cumulative buckets, `_sum`, `_count`), one series per route.
/// Empty when nothing was recorded.
pub fn render() -> String {
    let mut out = String::new();
    render_requests(&mut out);
    render_latency(&mut out);
    out
}

fn render_requests(out: &mut String) {
    let name = crate::admin::names::REQUESTS;
    let counters = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    if counters.is_empty() {
        return;
    }
    // Writing into a String cannot fail.
    let _ = writeln!(out, "# TYPE {name} counter");
    for ((route, decision, status), series) in counters.iter() {
        let total = series
            .iter()
            .fold(0u64, |sum, c| sum.wrapping_add(c.0.load(Ordering::Relaxed)));
        let route = escape_label(route);
        let _ = writeln!(
            out,
            "{name}{{route=\"{route}\",decision=\"{decision}\",status=\"{status}\"}} {total}"
        );
    }
}

fn render_latency(out: &mut String) {
    let name = crate::admin::names::LATENCY;
    let shards = SHARDS.lock().unwrap_or_else(|e| e.into_inner());
    if shards.is_empty() {
        return;
    }
    // Writing into a String cannot fail.
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (route, route_shards) in shards.iter() {
        let mut counts = [0u64; BUCKETS.len() + 1];
        let mut sum_nanos = 0u64;
        for shard in route_shards {
            for (total, count) in counts.iter_mut().zip(&shard.counts) {
                *total = total.wrapping_add(count.load(Ordering::Relaxed));
            }
            sum_nanos = sum_nanos.wrapping_add(shard.sum_nanos.load(Ordering::Relaxed));
        }
        let route = escape_label(route);
        let mut cumulative = 0u64;
        for (bound, count) in BUCKETS.iter().zip(&counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += counts[BUCKETS.len()];
        let _ = writeln!(
            out,
            "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}"
        );
        let sum = Duration::from_nanos(sum_nanos).as_secs_f64();
        let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {cumulative}");
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series of `route` in `render()`'s output.
    fn series(route: &str) -> Vec<String> {
        render()
            .lines()
            .filter(|line| line.contains(&format!("route=\"{route}\"")))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn samples_land_in_cumulative_buckets_with_sum_and_count() {
        let shard = shard("latency-test-buckets");
        shard.record(Duration::from_micros(100)); // <= 0.0005
        shard.record(Duration::from_micros(500)); // <= 0.0005 (bounds are inclusive)
        shard.record(Duration::from_millis(3)); // <= 0.005
        shard.record(Duration::from_secs(60)); // +Inf only
        let lines = series("latency-test-buckets");
        let bucket = |le: &str| {
            lines
                .iter()
                .find(|l| l.contains(&format!("le=\"{le}\"}}")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(bucket("0.0005").as_deref(), Some("2"));
        assert_eq!(bucket("0.0025").as_deref(), Some("2"));
        assert_eq!(bucket("0.005").as_deref(), Some("3"));
        assert_eq!(bucket("30").as_deref(), Some("3"));
        assert_eq!(bucket("+Inf").as_deref(), Some("4"));
        let value = |suffix: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(&format!("{}_{suffix}{{", crate::admin::names::LATENCY)))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(value("count").as_deref(), Some("4"));
        let sum: f64 = value("sum").unwrap().parse().unwrap();
        assert!((sum - 60.0036).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn shards_of_several_threads_are_summed() {
        let route = "latency-test-threads";
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    let shard = shard(route);
                    for _ in 0..1000 {
                        shard.record(Duration::from_millis(2));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let count = series(route)
            .into_iter()
            .find(|l| l.contains("_count{"))
            .unwrap();
        assert!(count.ends_with(" 4000"), "{count}");
    }

    #[test]
    fn label_values_are_escaped() {
        shard("latency \"test\"\\\n").record(Duration::from_millis(1));
        assert!(render().contains("route=\"latency \\\"test\\\"\\\\\\n\""));
    }

    #[test]
    fn the_output_is_one_family_per_metric() {
        shard("latency-test-family").record(Duration::from_millis(1));
        request_counter("latency-test-family", "allow", 200).increment();
        let text = render();
        assert_eq!(text.matches("# TYPE").count(), 2, "{text}");
        assert!(text.starts_with("# TYPE portcullis_requests_total counter\n"));
        assert_eq!(
            text.matches("# TYPE portcullis_request_duration_seconds histogram\n")
                .count(),
            1
        );
    }

    #[test]
    fn request_counters_of_several_threads_are_summed_per_series() {
        let route = "requests-test-threads";
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    let allowed = request_counter(route, "allow", 200);
                    let denied = request_counter(route, "deny", 403);
                    for _ in 0..1000 {
                        allowed.increment();
                    }
                    denied.increment();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let lines = series(route);
        let allowed = format!(
            "portcullis_requests_total{{route=\"{route}\",decision=\"allow\",status=\"200\"}} 4000"
        );
        let denied = format!(
            "portcullis_requests_total{{route=\"{route}\",decision=\"deny\",status=\"403\"}} 4"
        );
        assert!(lines.contains(&allowed), "{lines:?}");
        assert!(lines.contains(&denied), "{lines:?}");
    }
}

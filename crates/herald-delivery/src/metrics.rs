//! The delivery metrics, rendered in the Prometheus text format. Every name starts with
//! `herald_deliver`. Counters and the latency histogram are updated lock-free by the workers;
//! the backlog gauges are refreshed from the store every few seconds by the dispatcher.

use herald_domain::delivery::{AttemptError, Backlog, Lane, Settlement};
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the attempt latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

const RESULTS: [&str; 9] = [
    "2xx",
    "timeout",
    "connect",
    "response_incomplete",
    "dns",
    "blocked_address",
    "http_status",
    "tls",
    "not_sent",
];

/// The dispatcher's metrics.
#[derive(Default)]
pub struct DeliveryMetrics {
    /// Attempts whose delivery succeeded / will be retried / was dead-lettered.
    outcomes: [AtomicU64; 3],
    /// Attempts by result class (index into `RESULTS`).
    results: [AtomicU64; 9],
    buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    in_flight: [AtomicI64; 2],
    /// Per lane: webhooks in the slow lane, and attempts running on its budget.
    slow_webhooks: [AtomicI64; 2],
    slow_in_flight: [AtomicI64; 2],
    pending: AtomicU64,
    oldest_due_age_ms: AtomicI64,
    backlog_known: AtomicU64,
}

impl DeliveryMetrics {
    /// Records one finished attempt: its class, how long it took and what became of the delivery.
    pub fn record_attempt(
        &self,
        error: Option<AttemptError>,
        sent: bool,
        latency: Duration,
        settlement: Settlement,
    ) {
        let outcome = match settlement {
            Settlement::Succeeded => 0,
            Settlement::RetryAt(_) => 1,
            Settlement::Failed => 2,
        };
        self.outcomes[outcome].fetch_add(1, Ordering::Relaxed);
        let result = match (sent, error) {
            (false, _) => "not_sent",
            (true, None) => "2xx",
            (true, Some(e)) => e.as_str(),
        };
        let index = RESULTS
            .iter()
            .position(|r| *r == result)
            .unwrap_or(RESULTS.len() - 1);
        self.results[index].fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Adjusts the in-flight gauge of `lane` by `delta`.
    pub fn in_flight(&self, lane: Lane, delta: i64) {
        self.in_flight[lane_index(lane)].fetch_add(delta, Ordering::Relaxed);
    }

    /// Records how many webhooks of `lane` are in the slow lane and how many attempts run on
    /// its budget.
    pub fn set_slow(&self, lane: Lane, webhooks: usize, in_flight: usize) {
        self.slow_webhooks[lane_index(lane)].store(webhooks as i64, Ordering::Relaxed);
        self.slow_in_flight[lane_index(lane)].store(in_flight as i64, Ordering::Relaxed);
    }

    /// Attempts running right now, both lanes.
    pub fn in_flight_total(&self) -> i64 {
        self.in_flight
            .iter()
            .map(|g| g.load(Ordering::Relaxed))
            .sum()
    }

    /// Stores the latest backlog reading.
    pub fn set_backlog(&self, backlog: Backlog) {
        self.pending.store(backlog.pending, Ordering::Relaxed);
        self.oldest_due_age_ms
            .store(backlog.oldest_due_age_ms, Ordering::Relaxed);
        self.backlog_known.store(1, Ordering::Relaxed);
    }

    /// Deliveries that succeeded so far (for tests and benchmarks).
    pub fn succeeded(&self) -> u64 {
        self.outcomes[0].load(Ordering::Relaxed)
    }

    /// Appends the metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP herald_deliveries_total Delivery attempts by what became of the delivery: succeeded, retrying (failed, another attempt scheduled) or failed (dead-lettered).");
        let _ = writeln!(out, "# TYPE herald_deliveries_total counter");
        for (i, name) in ["succeeded", "retrying", "failed"].iter().enumerate() {
            let _ = writeln!(
                out,
                "herald_deliveries_total{{outcome=\"{name}\"}} {}",
                load(&self.outcomes[i])
            );
        }
        let _ = writeln!(out, "# HELP herald_delivery_attempts_total Delivery attempts by result: 2xx, an error class, or not_sent (e.g. an undecryptable secret).");
        let _ = writeln!(out, "# TYPE herald_delivery_attempts_total counter");
        for (i, name) in RESULTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "herald_delivery_attempts_total{{result=\"{name}\"}} {}",
                load(&self.results[i])
            );
        }
        let _ = writeln!(out, "# HELP herald_delivery_attempt_duration_seconds Time from the start of an attempt to its classified end.");
        let _ = writeln!(
            out,
            "# TYPE herald_delivery_attempt_duration_seconds histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "herald_delivery_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(&self.buckets[i])
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "herald_delivery_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "herald_delivery_attempt_duration_seconds_sum {}",
            load(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "herald_delivery_attempt_duration_seconds_count {count}"
        );
        let _ = writeln!(
            out,
            "# HELP herald_delivery_in_flight Attempts running now, by lane."
        );
        let _ = writeln!(out, "# TYPE herald_delivery_in_flight gauge");
        for lane in Lane::ALL {
            let _ = writeln!(
                out,
                "herald_delivery_in_flight{{lane=\"{}\"}} {}",
                lane.as_str(),
                self.in_flight[lane_index(lane)].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP herald_delivery_slow_webhooks Webhooks whose last attempt timed out or ran past HERALD_DELIVERY_SLOW_MS, served apart on the slow budget, by lane.");
        let _ = writeln!(out, "# TYPE herald_delivery_slow_webhooks gauge");
        for lane in Lane::ALL {
            let _ = writeln!(
                out,
                "herald_delivery_slow_webhooks{{lane=\"{}\"}} {}",
                lane.as_str(),
                self.slow_webhooks[lane_index(lane)].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP herald_delivery_slow_in_flight Attempts running on the slow budget (counted in herald_delivery_in_flight too), by lane.");
        let _ = writeln!(out, "# TYPE herald_delivery_slow_in_flight gauge");
        for lane in Lane::ALL {
            let _ = writeln!(
                out,
                "herald_delivery_slow_in_flight{{lane=\"{}\"}} {}",
                lane.as_str(),
                self.slow_in_flight[lane_index(lane)].load(Ordering::Relaxed)
            );
        }
        if load(&self.backlog_known) == 1 {
            let _ = writeln!(
                out,
                "# HELP herald_deliveries_pending Pending deliveries in the store (all replicas)."
            );
            let _ = writeln!(out, "# TYPE herald_deliveries_pending gauge");
            let _ = writeln!(out, "herald_deliveries_pending {}", load(&self.pending));
            let _ = writeln!(out, "# HELP herald_delivery_oldest_due_age_seconds How long the oldest due pending delivery has waited.");
            let _ = writeln!(out, "# TYPE herald_delivery_oldest_due_age_seconds gauge");
            let _ = writeln!(
                out,
                "herald_delivery_oldest_due_age_seconds {}",
                self.oldest_due_age_ms.load(Ordering::Relaxed) as f64 / 1000.0
            );
        }
    }
}

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Fresh => 0,
        Lane::Retry => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_class_has_its_own_result_label() {
        for class in AttemptError::ALL {
            assert!(RESULTS.contains(&class.as_str()), "{class:?}");
        }
    }

    #[test]
    fn renders_prometheus_text_with_the_documented_prefix() {
        let m = DeliveryMetrics::default();
        m.record_attempt(None, true, Duration::from_millis(3), Settlement::Succeeded);
        m.record_attempt(
            Some(AttemptError::Timeout),
            true,
            Duration::from_secs(20),
            Settlement::RetryAt(5),
        );
        m.set_slow(Lane::Fresh, 3, 7);
        m.set_backlog(Backlog {
            pending: 7,
            oldest_due_age_ms: 1500,
        });
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("herald_deliveries_total{outcome=\"succeeded\"} 1"));
        assert!(out.contains("herald_delivery_attempts_total{result=\"timeout\"} 1"));
        assert!(out.contains("herald_delivery_attempt_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(out.contains("herald_delivery_attempt_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(out.contains("herald_deliveries_pending 7"));
        assert!(out.contains("herald_delivery_slow_webhooks{lane=\"fresh\"} 3"));
        assert!(out.contains("herald_delivery_slow_in_flight{lane=\"fresh\"} 7"));
        assert!(out.contains("herald_delivery_oldest_due_age_seconds 1.5"));
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("herald_deliver"), "{line}");
        }
    }
}

//! The open-loop send schedule.
//!
//! # Why latency counts from the intended time
//!
//! A load generator that sends the next record only when it gets around
//! to it (after the previous request was written, after a stall in the
//! broker) quietly lowers its own rate exactly when the system under test
//! is slow, and the records it never sent during the stall never get a
//! bad latency: Gil Tene's *coordinated omission*. With `--throughput R`
//! every record `i` has an intended send time `start + i / R` fixed before
//! the run, and its latency is `ack time - intended time`. A producer that
//! falls behind (blocked on `max.in.flight`, on a full buffer, or simply
//! descheduled) appends the overdue records as soon as it can, and the
//! wait it caused shows in their latency, as it would for a real
//! application that produced them on time.
//!
//! With `--throughput -1` there is no schedule: records are made as fast
//! as the buffer accepts them (closed loop, the maximum rate), and latency
//! counts from the moment each record was appended, as Kafka's
//! `kafka-producer-perf-test --throughput -1` counts from `send()`. Those
//! latencies mostly measure the client's own queue and are not comparable
//! with open-loop ones.

/// When each record is meant to be sent, relative to the run's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// `records_per_sec` records per second in total, evenly spaced.
    Open { records_per_sec: f64 },
    /// As fast as possible.
    Closed,
}

impl Schedule {
    /// Kafka's `--throughput` convention: a positive rate, or any value
    /// `<= 0` (the docs say -1) for no throttling.
    pub fn from_throughput(records_per_sec: f64) -> Schedule {
        if records_per_sec > 0.0 && records_per_sec.is_finite() {
            Schedule::Open { records_per_sec }
        } else {
            Schedule::Closed
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Schedule::Open { .. })
    }

    /// Intended send time of the run's record `index` (counted over all
    /// producers), in nanoseconds after the start; `None` when closed.
    pub fn intended_ns(&self, index: u64) -> Option<u64> {
        match *self {
            // f64 holds the product exactly enough: for 10^9 records at
            // 10^6/s the error is far below a nanosecond per second.
            Schedule::Open { records_per_sec } => {
                Some((index as f64 * 1e9 / records_per_sec).round() as u64)
            }
            Schedule::Closed => None,
        }
    }
}

/// Latency of one record: from its intended (or, closed-loop, append) time
/// to its acknowledgement, in whole microseconds, at least 1 so that the
/// histogram's lowest bucket holds sub-microsecond answers.
pub fn latency_us(intended_ns: u64, acked_ns: u64) -> u64 {
    (acked_ns.saturating_sub(intended_ns) / 1_000).max(1)
}

/// Which records of the run producer `producer` of `producers` sends:
/// every `producers`-th index starting at `producer`, so that together
/// they follow the one global schedule.
pub fn producer_share(records: u64, producer: usize, producers: usize) -> u64 {
    assert!(producers > 0);
    assert!(producer < producers);
    let (k, n) = (producer as u64, producers as u64);
    if records <= k {
        0
    } else {
        (records - k).div_ceil(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_schedule_spaces_records_evenly() {
        let s = Schedule::from_throughput(1000.0);
        assert!(s.is_open());
        assert_eq!(s.intended_ns(0), Some(0));
        assert_eq!(s.intended_ns(1), Some(1_000_000));
        assert_eq!(s.intended_ns(1000), Some(1_000_000_000));
        let s = Schedule::from_throughput(3.0);
        assert_eq!(s.intended_ns(1), Some(333_333_333));
        assert_eq!(s.intended_ns(3), Some(1_000_000_000));
    }

    #[test]
    fn schedule_is_monotonic_at_high_rates() {
        let s = Schedule::from_throughput(7_777_777.0);
        let mut last = 0;
        for i in 1..100_000u64 {
            let t = s.intended_ns(i).expect("open");
            assert!(t >= last, "record {i} at {t} before {last}");
            last = t;
        }
        // A billion records later the schedule is still exact to the ns.
        let t = s.intended_ns(1_000_000_000).expect("open");
        let exact = 1e18 / 7_777_777.0;
        assert!((t as f64 - exact).abs() <= 1.0, "{t} vs {exact}");
    }

    #[test]
    fn non_positive_throughput_is_closed_loop() {
        for r in [-1.0, 0.0, f64::NAN, f64::INFINITY] {
            let s = Schedule::from_throughput(r);
            assert_eq!(s, Schedule::Closed);
            assert_eq!(s.intended_ns(5), None);
        }
    }

    #[test]
    fn latency_counts_from_the_intended_time() {
        // Record 10 at 1000/s was due at 10 ms; the sender stalled and
        // appended it at 50 ms; the ack came at 52 ms: 42 ms, not 2 ms.
        let s = Schedule::from_throughput(1000.0);
        let intended = s.intended_ns(10).expect("open");
        assert_eq!(latency_us(intended, 52_000_000), 42_000);
        // An ack "before" the intended time (clock granularity) is 1 us.
        assert_eq!(latency_us(5_000, 4_000), 1);
        assert_eq!(latency_us(0, 999), 1);
    }

    #[test]
    fn producers_split_the_records_exactly() {
        for records in [0u64, 1, 2, 7, 100, 1001] {
            for producers in 1..6 {
                let total: u64 = (0..producers)
                    .map(|p| producer_share(records, p, producers))
                    .sum();
                assert_eq!(total, records, "{records} records, {producers} producers");
            }
        }
        assert_eq!(producer_share(10, 0, 3), 4); // 0 3 6 9
        assert_eq!(producer_share(10, 2, 3), 3); // 2 5 8
    }
}

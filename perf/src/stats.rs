//! Latency histograms (HDR, microsecond resolution) and the report lines,
//! laid out like Kafka's `kafka-producer-perf-test` so the two can be read
//! side by side:
//!
//! ```text
//! 250012 records sent, 50002.4 records/sec (48.83 MB/sec), 3.102 ms avg latency, 41.215 ms max latency.
//! 1000000 records sent, 49998.1 records/sec (48.83 MB/sec), 2.817 ms avg latency, 41.215 ms max latency, 2.441 ms 50th, 5.103 ms 95th, 9.871 ms 99th, 30.207 ms 99.9th.
//! ```
//!
//! Kafka prints whole milliseconds for the percentiles; here every
//! latency has three decimals (microseconds). MB is 2^20 bytes, as in
//! Kafka's tools, and counts record values (plus keys) only.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The largest latency a histogram tells apart (an hour); larger ones are
/// recorded as this.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
const MB: f64 = 1024.0 * 1024.0;

/// A latency histogram, 3 significant digits from 1 us to an hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant bounds are valid")
}

/// Throughput and latency of a set of records.
#[derive(Debug, Clone)]
pub struct Tally {
    pub records: u64,
    pub bytes: u64,
    /// Percentiles come from here (3 significant digits)...
    pub latency_us: Histogram<u64>,
    /// ...the average and maximum are exact.
    latency_us_sum: u128,
    latency_us_max: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            records: 0,
            bytes: 0,
            latency_us: histogram(),
            latency_us_sum: 0,
            latency_us_max: 0,
        }
    }
}

impl Tally {
    /// Counts one record of `bytes` payload bytes that took `latency_us`.
    pub fn record(&mut self, bytes: u64, latency_us: u64) {
        self.records += 1;
        self.bytes += bytes;
        let latency_us = latency_us.max(1);
        self.latency_us.saturating_record(latency_us);
        self.latency_us_sum += u128::from(latency_us);
        self.latency_us_max = self.latency_us_max.max(latency_us);
    }

    pub fn add(&mut self, other: &Tally) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms share bounds");
        self.latency_us_sum += other.latency_us_sum;
        self.latency_us_max = self.latency_us_max.max(other.latency_us_max);
    }

    /// The tally so far, leaving an empty one in its place.
    pub fn take(&mut self) -> Tally {
        std::mem::take(self)
    }

    /// `N records <verb>, X records/sec (Y MB/sec), A ms avg latency, M ms max latency.`
    pub fn progress_line(&self, verb: &str, elapsed: Duration) -> String {
        let (rate, mb) = self.rates(elapsed);
        format!(
            "{} records {verb}, {rate:.1} records/sec ({mb:.2} MB/sec), {:.3} ms avg latency, {:.3} ms max latency.",
            self.records,
            self.mean_ms(),
            ms(self.max_us()),
        )
    }

    /// The progress line with the 50th, 95th, 99th and 99.9th percentiles.
    pub fn summary_line(&self, verb: &str, elapsed: Duration) -> String {
        // HDR reports a bucket's highest value; never above the exact max.
        let p = |q: f64| ms(self.latency_us.value_at_quantile(q).min(self.max_us()));
        let mut line = self.progress_line(verb, elapsed);
        line.pop(); // the full stop
        line.push_str(&format!(
            ", {:.3} ms 50th, {:.3} ms 95th, {:.3} ms 99th, {:.3} ms 99.9th.",
            p(0.5),
            p(0.95),
            p(0.99),
            p(0.999)
        ));
        line
    }

    fn rates(&self, elapsed: Duration) -> (f64, f64) {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return (0.0, 0.0);
        }
        (self.records as f64 / secs, self.bytes as f64 / MB / secs)
    }

    fn mean_ms(&self) -> f64 {
        if self.records == 0 {
            0.0
        } else {
            self.latency_us_sum as f64 / self.records as f64 / 1000.0
        }
    }

    fn max_us(&self) -> u64 {
        self.latency_us_max
    }
}

/// CPU seconds this process has used so far: (user, system).
pub fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage(2) fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

/// `load generator CPU: U s user + S s sys over E s (P% of one core)`:
/// near 100% the load generator, not the broker, may set the rate.
pub fn cpu_line(elapsed: Duration) -> String {
    let (user, sys) = cpu_seconds();
    let wall = elapsed.as_secs_f64();
    let share = if wall > 0.0 {
        (user + sys) / wall * 100.0
    } else {
        0.0
    };
    format!("load generator CPU: {user:.2} s user + {sys:.2} s sys over {wall:.2} s ({share:.0}% of one core)")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A report line read back: what tests and scripts need from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine {
    pub records: u64,
    pub verb: String,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    /// 50th, 95th, 99th and 99.9th; empty on a progress line.
    pub percentiles_ms: Vec<f64>,
}

/// Parses a progress or summary line; `None` if it is neither.
pub fn parse_line(line: &str) -> Option<ParsedLine> {
    let body = line.trim().strip_suffix('.')?;
    let mut parts = body.split(", ");
    let mut head = parts.next()?.split(' ');
    let records = head.next()?.parse().ok()?;
    (head.next()? == "records").then_some(())?;
    let verb = head.next()?.to_owned();
    let rate_part = parts.next()?;
    let (rate, mb) = rate_part.split_once(" records/sec (")?;
    let mb = mb.strip_suffix(" MB/sec)")?;
    let number = |part: Option<&str>, suffix: &str| -> Option<f64> {
        part?.strip_suffix(suffix)?.parse().ok()
    };
    let avg_ms = number(parts.next(), " ms avg latency")?;
    let max_ms = number(parts.next(), " ms max latency")?;
    let mut percentiles_ms = Vec::new();
    for suffix in [" ms 50th", " ms 95th", " ms 99th", " ms 99.9th"] {
        match parts.next() {
            None if percentiles_ms.is_empty() => break,
            part => percentiles_ms.push(number(part, suffix)?),
        }
    }
    parts.next().is_none().then_some(())?;
    Some(ParsedLine {
        records,
        verb,
        records_per_sec: rate.parse().ok()?,
        mb_per_sec: mb.parse().ok()?,
        avg_ms,
        max_ms,
        percentiles_ms,
    })
}

/// Kafka's consumer perf test date format, `yyyy-MM-dd HH:mm:ss:SSS`, in UTC.
pub fn kafka_time(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}:{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil: days since 1970-01-01 to (y, m, d).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(latencies_us: &[u64], bytes: u64) -> Tally {
        let mut t = Tally::default();
        for &l in latencies_us {
            t.record(bytes, l);
        }
        t
    }

    #[test]
    fn summary_has_microsecond_percentiles() {
        // 1000 records: 1..=1000 us, 1 KiB each, over 2 s.
        let lat: Vec<u64> = (1..=1000).collect();
        let t = tally(&lat, 1024);
        let line = t.summary_line("sent", Duration::from_secs(2));
        assert_eq!(
            line,
            "1000 records sent, 500.0 records/sec (0.49 MB/sec), 0.500 ms avg latency, \
             1.000 ms max latency, 0.500 ms 50th, 0.950 ms 95th, 0.990 ms 99th, 0.999 ms 99.9th."
        );
        let parsed = parse_line(&line).expect("parses");
        assert_eq!(parsed.records, 1000);
        assert_eq!(parsed.verb, "sent");
        assert_eq!(parsed.percentiles_ms, vec![0.5, 0.95, 0.99, 0.999]);
    }

    #[test]
    fn progress_line_matches_kafkas_layout() {
        let t = tally(&[2_000, 4_000], 100);
        let line = t.progress_line("sent", Duration::from_millis(5000));
        assert_eq!(
            line,
            "2 records sent, 0.4 records/sec (0.00 MB/sec), 3.000 ms avg latency, 4.000 ms max latency."
        );
        let parsed = parse_line(&line).expect("parses");
        assert_eq!(parsed.avg_ms, 3.0);
        assert_eq!(parsed.max_ms, 4.0);
        assert!(parsed.percentiles_ms.is_empty());
    }

    #[test]
    fn large_latencies_keep_three_significant_digits() {
        let t = tally(&[123_456_789], 1);
        let line = t.summary_line("sent", Duration::from_secs(1));
        let p = parse_line(&line).expect("parses");
        assert!(
            (p.max_ms - 123_456.789).abs() / 123_456.789 < 1e-3,
            "{line}"
        );
        // Beyond the histogram's range latencies saturate, never panic.
        let t = tally(&[LATENCY_US_MAX * 10], 1);
        assert!(t.latency_us.max() >= LATENCY_US_MAX);
        assert_eq!(t.max_us(), LATENCY_US_MAX * 10);
    }

    #[test]
    fn empty_tally_prints_zeros() {
        let t = Tally::default();
        assert_eq!(
            t.summary_line("sent", Duration::ZERO),
            "0 records sent, 0.0 records/sec (0.00 MB/sec), 0.000 ms avg latency, \
             0.000 ms max latency, 0.000 ms 50th, 0.000 ms 95th, 0.000 ms 99th, 0.000 ms 99.9th."
        );
    }

    #[test]
    fn tallies_merge_and_reset() {
        let mut a = tally(&[10, 20], 5);
        let b = tally(&[30], 7);
        a.add(&b);
        assert_eq!((a.records, a.bytes), (3, 17));
        assert_eq!(a.latency_us.max(), 30);
        assert_eq!(a.max_us(), 30);
        assert_eq!(a.latency_us_sum, 60);
        let taken = a.take();
        assert_eq!(taken.records, 3);
        assert_eq!(a.records, 0);
        assert!(a.latency_us.is_empty());
    }

    #[test]
    fn other_lines_do_not_parse() {
        for line in [
            "",
            "start.time, end.time",
            "10 records sent, fast",
            "10 records sent, 1.0 records/sec (1.00 MB/sec), 1.000 ms avg latency.",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn kafka_time_formats_utc() {
        assert_eq!(kafka_time(Duration::ZERO), "1970-01-01 00:00:00:000");
        // 2024-02-29 13:14:15.678 UTC
        assert_eq!(
            kafka_time(Duration::from_millis(1_709_212_455_678)),
            "2024-02-29 13:14:15:678"
        );
    }
}

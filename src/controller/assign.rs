//! Replica assignment for new topics and added partitions: Kafka's
//! `AdminUtils.assignReplicasToBrokers`, decision for decision, so a
//! Ringtail cluster places replicas where a Kafka cluster with the same
//! brokers would.
//!
//! - Rack-unaware (some broker has no `broker.rack`): brokers sorted by
//!   id; partition `p`'s first replica (its preferred leader) is broker
//!   `(p + start) % n`, so leaders go round-robin; the other replicas
//!   follow at a shift that grows by one every `n` partitions, so
//!   followers spread too.
//! - Rack-aware (every broker has a rack): the same walk over the
//!   rack-alternated list (racks sorted, one broker of each in turn), and
//!   a replica is skipped while its rack already holds one and some rack
//!   holds none, so each partition spans `min(RF, racks)` racks. Kafka
//!   refuses a mix of brokers with and without racks unless told to
//!   ignore racks; Ringtail ignores racks then.
//!
//! Kafka draws `start` and the first shift at random for new topics and
//! fixes both to partition 0's leader index when adding partitions
//! (`AdminZkClient.addPartitions`): [`assign_replicas`] draws them from a
//! seed, [`assign_replicas_from`] takes a fixed start.

use std::collections::{BTreeMap, BTreeSet};

/// A broker id and its rack.
pub type BrokerRack = (i32, Option<String>);

/// Replicas for `partitions` partitions numbered from `start_partition`,
/// with Kafka's random start index and shift drawn from `seed`.
pub fn assign_replicas(
    brokers: &[BrokerRack],
    partitions: i32,
    replication_factor: i16,
    start_partition: i32,
    seed: u64,
) -> Result<Vec<Vec<i32>>, String> {
    let n = brokers.len().max(1) as u64;
    let mut s = seed;
    let start = (splitmix64(&mut s) % n) as usize;
    let shift = (splitmix64(&mut s) % n) as usize;
    assign(
        brokers,
        partitions,
        replication_factor,
        start_partition,
        start,
        shift,
    )
}

/// As [`assign_replicas`] with Kafka's `fixedStartIndex`: start index and
/// first shift both `start_index`.
pub fn assign_replicas_from(
    brokers: &[BrokerRack],
    partitions: i32,
    replication_factor: i16,
    start_partition: i32,
    start_index: usize,
) -> Result<Vec<Vec<i32>>, String> {
    assign(
        brokers,
        partitions,
        replication_factor,
        start_partition,
        start_index,
        start_index,
    )
}

/// Kafka's `startIndex` for added partitions: the position (in the sorted
/// broker list) of the first broker whose id is at least partition 0's
/// first replica, or 0.
pub fn start_index_for(brokers: &[BrokerRack], partition0_leader: i32) -> usize {
    let mut ids: Vec<i32> = brokers.iter().map(|b| b.0).collect();
    ids.sort_unstable();
    ids.iter()
        .position(|&id| id >= partition0_leader)
        .unwrap_or(0)
}

fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn assign(
    brokers: &[BrokerRack],
    partitions: i32,
    replication_factor: i16,
    start_partition: i32,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, String> {
    if partitions < 1 {
        return Err(format!(
            "number of partitions must be at least 1, got {partitions}"
        ));
    }
    if replication_factor < 1 {
        return Err(format!(
            "replication factor must be at least 1, got {replication_factor}"
        ));
    }
    let mut sorted = brokers.to_vec();
    sorted.sort();
    sorted.dedup_by_key(|b| b.0);
    if usize::from(replication_factor as u16) > sorted.len() {
        return Err(format!(
            "replication factor {replication_factor} is larger than the {} available brokers",
            sorted.len()
        ));
    }
    let racks: Option<BTreeMap<i32, String>> = sorted
        .iter()
        .map(|(id, rack)| rack.clone().map(|r| (*id, r)))
        .collect();
    let rf = replication_factor as usize;
    let first = start_partition.max(0) as usize;
    Ok(match racks {
        Some(racks) => rack_aware(&racks, partitions as usize, rf, first, start, shift),
        None => {
            let ids: Vec<i32> = sorted.iter().map(|b| b.0).collect();
            rack_unaware(&ids, partitions as usize, rf, first, start, shift)
        }
    })
}

/// Kafka's `replicaIndex`: the broker `j + 1` steps (modulo the shift)
/// after the first replica, never the first replica itself.
fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    (first + 1 + (shift + j) % (n - 1)) % n
}

fn rack_unaware(
    ids: &[i32],
    partitions: usize,
    rf: usize,
    first_partition: usize,
    start: usize,
    mut shift: usize,
) -> Vec<Vec<i32>> {
    let n = ids.len();
    let mut out = Vec::with_capacity(partitions);
    for p in first_partition..first_partition + partitions {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![ids[first]];
        for j in 0..rf - 1 {
            replicas.push(ids[replica_index(first, shift, j, n)]);
        }
        out.push(replicas);
    }
    out
}

/// Kafka's `getRackAlternatedBrokerList`: racks sorted, brokers of each
/// rack sorted, one broker per rack in turn.
fn rack_alternated(racks: &BTreeMap<i32, String>) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in racks {
        by_rack.entry(rack).or_default().push(*id);
    }
    let mut iters: Vec<std::vec::IntoIter<i32>> =
        by_rack.into_values().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(racks.len());
    let mut i = 0;
    while out.len() < racks.len() {
        if let Some(id) = iters[i].next() {
            out.push(id);
        }
        i = (i + 1) % iters.len();
    }
    out
}

fn rack_aware(
    racks: &BTreeMap<i32, String>,
    partitions: usize,
    rf: usize,
    first_partition: usize,
    start: usize,
    mut shift: usize,
) -> Vec<Vec<i32>> {
    let rack_count = racks.values().collect::<BTreeSet<_>>().len();
    let list = rack_alternated(racks);
    let n = list.len();
    let mut out = Vec::with_capacity(partitions);
    for p in first_partition..first_partition + partitions {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let leader = list[first];
        let mut replicas = vec![leader];
        let mut racks_used: BTreeSet<&str> = BTreeSet::from([racks[&leader].as_str()]);
        let mut k = 0;
        for _ in 0..rf - 1 {
            loop {
                let broker = list[replica_index(first, shift * rack_count, k, n)];
                let rack = racks[&broker].as_str();
                k += 1;
                let rack_ok = !racks_used.contains(rack) || racks_used.len() == rack_count;
                let broker_ok = !replicas.contains(&broker) || replicas.len() == n;
                if rack_ok && broker_ok {
                    replicas.push(broker);
                    racks_used.insert(rack);
                    break;
                }
            }
        }
        out.push(replicas);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(ids: &[i32]) -> Vec<BrokerRack> {
        ids.iter().map(|&i| (i, None)).collect()
    }

    fn check_distinct(a: &[Vec<i32>], rf: usize, ctx: &str) {
        for (p, r) in a.iter().enumerate() {
            assert_eq!(r.len(), rf, "{ctx}: partition {p}: {r:?}");
            let set: BTreeSet<_> = r.iter().collect();
            assert_eq!(
                set.len(),
                rf,
                "{ctx}: partition {p} repeats a broker: {r:?}"
            );
        }
    }

    /// Kafka's own example (AdminUtils scaladoc): 5 brokers, 10
    /// partitions, RF 3, start index 0, first shift 0.
    #[test]
    fn matches_kafkas_documented_example() {
        let a = assign(&plain(&[0, 1, 2, 3, 4]), 10, 3, 0, 0, 0).expect("assign");
        let expected: Vec<Vec<i32>> = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(a, expected);
    }

    #[test]
    fn replicas_are_distinct_and_leaders_spread_evenly() {
        for seed in 0..200u64 {
            let n = 1 + (seed % 7) as i32;
            let ids: Vec<i32> = (0..n).map(|i| 10 + i * 3).collect();
            for rf in 1..=n.min(4) as i16 {
                let parts = n * 4;
                let a = assign_replicas(&plain(&ids), parts, rf, 0, seed)
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                check_distinct(&a, rf as usize, &format!("seed {seed} rf {rf}"));
                let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
                for r in &a {
                    *leaders.entry(r[0]).or_default() += 1;
                }
                assert_eq!(leaders.len(), n as usize, "seed {seed}: {leaders:?}");
                assert!(
                    leaders.values().all(|&c| c == 4),
                    "seed {seed}: {leaders:?}"
                );
                let mut all: BTreeMap<i32, usize> = BTreeMap::new();
                for r in &a {
                    for b in r {
                        *all.entry(*b).or_default() += 1;
                    }
                }
                assert!(
                    all.values().all(|&c| c == 4 * rf as usize),
                    "seed {seed} rf {rf}: replicas per broker {all:?}"
                );
            }
        }
    }

    #[test]
    fn racks_are_spanned() {
        for seed in 0..200u64 {
            let rack_count = 1 + (seed % 4) as usize;
            let n = rack_count + (seed as usize / 4) % 5;
            let brokers: Vec<BrokerRack> = (0..n as i32)
                .map(|i| (i, Some(format!("r{}", i as usize % rack_count))))
                .collect();
            for rf in 1..=n.min(4) {
                let a = assign_replicas(&brokers, 12, rf as i16, 0, seed)
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                check_distinct(&a, rf, &format!("seed {seed} rf {rf}"));
                for r in &a {
                    let racks: BTreeSet<String> = r
                        .iter()
                        .map(|b| brokers[*b as usize].1.clone().expect("rack"))
                        .collect();
                    assert_eq!(
                        racks.len(),
                        rf.min(rack_count),
                        "seed {seed} rf {rf}: {r:?} on racks {racks:?}"
                    );
                }
            }
        }
        // The rack-alternated list (Kafka's example).
        let racks: BTreeMap<i32, String> = [
            (0, "rack1"),
            (1, "rack3"),
            (2, "rack3"),
            (3, "rack2"),
            (4, "rack2"),
            (5, "rack1"),
        ]
        .into_iter()
        .map(|(i, r)| (i, r.to_string()))
        .collect();
        assert_eq!(rack_alternated(&racks), vec![0, 3, 1, 5, 4, 2]);
    }

    #[test]
    fn too_few_brokers_and_added_partitions() {
        let e = assign_replicas(&plain(&[1, 2]), 3, 3, 0, 7).expect_err("rf 3 on 2");
        assert!(e.contains("larger than the 2 available"), "{e}");
        assert!(assign_replicas(&[], 1, 1, 0, 7).is_err());
        assert!(assign_replicas(&plain(&[1]), 0, 1, 0, 7).is_err());
        assert!(assign_replicas(&plain(&[1]), 1, 0, 0, 7).is_err());
        // Adding partitions 3..6 continues the round-robin of 0..3.
        let brokers = plain(&[1, 2, 3]);
        let first = assign_replicas_from(&brokers, 3, 2, 0, 1).expect("first");
        let start = start_index_for(&brokers, first[0][0]);
        assert_eq!(start, 1);
        let more = assign_replicas_from(&brokers, 3, 2, 3, start).expect("more");
        let leaders: Vec<i32> = first.iter().chain(&more).map(|r| r[0]).collect();
        assert_eq!(leaders, vec![2, 3, 1, 2, 3, 1]);
        check_distinct(&more, 2, "added");
    }
}

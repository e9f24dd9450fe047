//! Kafka's ZooKeeper layout, so that people who ran ZooKeeper + Kafka
//! recognise the tree (`kafka.zk.ZkData` names these paths).

/// Parents that must exist before brokers register; created persistent.
pub const PERSISTENT_PATHS: [&str; 9] = [
    "/brokers",
    "/brokers/ids",
    "/brokers/topics",
    "/config",
    "/config/topics",
    "/config/brokers",
    "/cluster",
    "/admin",
    "/admin/delete_topics",
];

/// Ephemeral, owned by the active controller's session.
pub const CONTROLLER: &str = "/controller";
/// Persistent; its version fences controller epochs.
pub const CONTROLLER_EPOCH: &str = "/controller_epoch";
pub const CLUSTER_ID: &str = "/cluster/id";
pub const BROKER_IDS: &str = "/brokers/ids";
pub const BROKER_TOPICS: &str = "/brokers/topics";
pub const CONFIG_TOPICS: &str = "/config/topics";
pub const CONFIG_BROKERS: &str = "/config/brokers";
/// Topics being deleted: `/admin/delete_topics/T` until the topic's nodes
/// are gone.
pub const ADMIN_DELETE_TOPICS: &str = "/admin/delete_topics";

/// `/brokers/ids/N`, ephemeral per broker session.
pub fn broker_id(broker: u32) -> String {
    format!("{BROKER_IDS}/{broker}")
}

/// `/brokers/topics/T`: the replica assignment.
pub fn topic(topic: &str) -> String {
    format!("{BROKER_TOPICS}/{topic}")
}

/// `/brokers/topics/T/partitions/P/state`: leader, leader_epoch, isr; its
/// znode version is the compare-and-set fence for ISR changes.
pub fn partition_state(topic: &str, partition: u32) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions/{partition}/state")
}

/// `/config/topics/T`.
pub fn topic_config(topic: &str) -> String {
    format!("{CONFIG_TOPICS}/{topic}")
}

/// `/config/brokers/N`.
pub fn broker_config(broker: u32) -> String {
    format!("{CONFIG_BROKERS}/{broker}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::validate_path;

    #[test]
    fn paths_are_valid() {
        for p in PERSISTENT_PATHS {
            assert!(validate_path(p).is_ok());
        }
        assert_eq!(partition_state("t", 3), "/brokers/topics/t/partitions/3/state");
        assert!(validate_path(&partition_state("t", 3)).is_ok());
        assert_eq!(broker_id(7), "/brokers/ids/7");
        assert!(validate_path(&topic_config("t")).is_ok());
        assert!(validate_path(&broker_config(1)).is_ok());
        assert!(validate_path(CLUSTER_ID).is_ok());
    }
}

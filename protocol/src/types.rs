//! Newtypes for Kafka's ids and offsets, so an offset cannot be passed
//! where an epoch is expected. Each wraps the exact wire type.

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $inner);

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }

        impl From<$name> for $inner {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

newtype!(
    /// A position in a partition's log (Kafka's `long offset`).
    Offset(i64)
);
newtype!(
    /// Kafka's partition leader epoch; -1 means unknown.
    LeaderEpoch(i32)
);
newtype!(
    /// A partition index within a topic.
    PartitionId(i32)
);
newtype!(
    /// A broker id (`broker.id`, `node_id` on the wire).
    NodeId(i32)
);
newtype!(
    /// An idempotent or transactional producer's id; -1 means none.
    ProducerId(i64)
);
newtype!(
    /// A producer's epoch; -1 means none.
    ProducerEpoch(i16)
);
newtype!(
    /// The per-partition sequence number of a producer's first record in a
    /// batch; -1 means none.
    Sequence(i32)
);
newtype!(
    /// Echoed from request header to response header so the client can
    /// match them.
    CorrelationId(i32)
);

impl Offset {
    /// Kafka's "no offset" sentinel, as used for `log_start_offset` in a
    /// follower fetch or a produce error response.
    pub const NONE: Offset = Offset(-1);
}

impl LeaderEpoch {
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);
}

impl ProducerId {
    pub const NONE: ProducerId = ProducerId(-1);
}

impl ProducerEpoch {
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
}

impl Sequence {
    pub const NONE: Sequence = Sequence(-1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newtypes_convert_both_ways_and_display_the_number() {
        let offset = Offset::from(42);
        assert_eq!(i64::from(offset), 42);
        assert_eq!(offset.to_string(), "42");
        assert!(Offset(1) < Offset(2));
        assert_eq!(LeaderEpoch::UNKNOWN.0, -1);
    }
}

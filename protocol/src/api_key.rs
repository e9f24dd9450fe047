//! Kafka API keys and the version rules that hang off them: which request
//! and response header version a given API version uses.

macro_rules! api_keys {
    ($(($variant:ident, $key:literal, $first_flexible:expr)),* $(,)?) => {
        /// A Kafka API, numbered as on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i16)]
        pub enum ApiKey {
            $($variant = $key,)*
        }

        impl ApiKey {
            /// Every API this table knows.
            pub const ALL: &'static [ApiKey] = &[$(ApiKey::$variant),*];

            pub const fn key(self) -> i16 {
                self as i16
            }

            /// `None` for a key Kafka does not define (as far as this
            /// table knows).
            pub const fn from_key(key: i16) -> Option<ApiKey> {
                match key {
                    $($key => Some(ApiKey::$variant),)*
                    _ => None,
                }
            }

            /// The first version that uses the flexible encoding (compact
            /// strings and arrays, tagged fields), from Kafka's message
            /// JSON `flexibleVersions`. `None` for the few APIs that never
            /// became flexible.
            pub const fn first_flexible_version(self) -> Option<i16> {
                match self {
                    $(ApiKey::$variant => $first_flexible,)*
                }
            }
        }
    };
}

// (variant, key, first flexible version)
api_keys! {
    (Produce, 0, Some(9)),
    (Fetch, 1, Some(12)),
    (ListOffsets, 2, Some(6)),
    (Metadata, 3, Some(9)),
    (LeaderAndIsr, 4, Some(4)),
    (StopReplica, 5, Some(2)),
    (UpdateMetadata, 6, Some(6)),
    (ControlledShutdown, 7, Some(3)),
    (OffsetCommit, 8, Some(8)),
    (OffsetFetch, 9, Some(6)),
    (FindCoordinator, 10, Some(3)),
    (JoinGroup, 11, Some(6)),
    (Heartbeat, 12, Some(4)),
    (LeaveGroup, 13, Some(4)),
    (SyncGroup, 14, Some(4)),
    (DescribeGroups, 15, Some(5)),
    (ListGroups, 16, Some(3)),
    (SaslHandshake, 17, None),
    (ApiVersions, 18, Some(3)),
    (CreateTopics, 19, Some(5)),
    (DeleteTopics, 20, Some(4)),
    (DeleteRecords, 21, Some(2)),
    (InitProducerId, 22, Some(2)),
    (OffsetForLeaderEpoch, 23, Some(4)),
    (AddPartitionsToTxn, 24, Some(3)),
    (AddOffsetsToTxn, 25, Some(3)),
    (EndTxn, 26, Some(3)),
    (WriteTxnMarkers, 27, Some(1)),
    (TxnOffsetCommit, 28, Some(3)),
    (DescribeAcls, 29, Some(2)),
    (CreateAcls, 30, Some(2)),
    (DeleteAcls, 31, Some(2)),
    (DescribeConfigs, 32, Some(4)),
    (AlterConfigs, 33, Some(2)),
    (AlterReplicaLogDirs, 34, Some(2)),
    (DescribeLogDirs, 35, Some(2)),
    (SaslAuthenticate, 36, Some(2)),
    (CreatePartitions, 37, Some(2)),
    (CreateDelegationToken, 38, Some(2)),
    (RenewDelegationToken, 39, Some(2)),
    (ExpireDelegationToken, 40, Some(2)),
    (DescribeDelegationToken, 41, Some(2)),
    (DeleteGroups, 42, Some(2)),
    (ElectLeaders, 43, Some(2)),
    (IncrementalAlterConfigs, 44, Some(1)),
    (AlterPartitionReassignments, 45, Some(0)),
    (ListPartitionReassignments, 46, Some(0)),
    (OffsetDelete, 47, None),
    (DescribeClientQuotas, 48, Some(1)),
    (AlterClientQuotas, 49, Some(1)),
    (DescribeUserScramCredentials, 50, Some(0)),
    (AlterUserScramCredentials, 51, Some(0)),
    (Vote, 52, Some(0)),
    (BeginQuorumEpoch, 53, Some(1)),
    (EndQuorumEpoch, 54, Some(1)),
    (DescribeQuorum, 55, Some(0)),
    (AlterPartition, 56, Some(0)),
    (UpdateFeatures, 57, Some(0)),
    (Envelope, 58, Some(0)),
    (FetchSnapshot, 59, Some(0)),
    (DescribeCluster, 60, Some(0)),
    (DescribeProducers, 61, Some(0)),
    (BrokerRegistration, 62, Some(0)),
    (BrokerHeartbeat, 63, Some(0)),
    (UnregisterBroker, 64, Some(0)),
    (DescribeTransactions, 65, Some(0)),
    (ListTransactions, 66, Some(0)),
    (AllocateProducerIds, 67, Some(0)),
    (ConsumerGroupHeartbeat, 68, Some(0)),
    (ConsumerGroupDescribe, 69, Some(0)),
    (ControllerRegistration, 70, Some(0)),
    (GetTelemetrySubscriptions, 71, Some(0)),
    (PushTelemetry, 72, Some(0)),
    (AssignReplicasToDirs, 73, Some(0)),
    (ListConfigResources, 74, Some(0)),
    (DescribeTopicPartitions, 75, Some(0)),
    (ShareGroupHeartbeat, 76, Some(0)),
    (ShareGroupDescribe, 77, Some(0)),
    (ShareFetch, 78, Some(0)),
    (ShareAcknowledge, 79, Some(0)),
    (AddRaftVoter, 80, Some(0)),
    (RemoveRaftVoter, 81, Some(0)),
    (UpdateRaftVoter, 82, Some(0)),
    (InitializeShareGroupState, 83, Some(0)),
    (ReadShareGroupState, 84, Some(0)),
    (WriteShareGroupState, 85, Some(0)),
    (DeleteShareGroupState, 86, Some(0)),
    (ReadShareGroupStateSummary, 87, Some(0)),
    (DescribeShareGroupOffsets, 90, Some(0)),
    (AlterShareGroupOffsets, 91, Some(0)),
    (DeleteShareGroupOffsets, 92, Some(0)),
}

impl ApiKey {
    /// Whether `version` of this API uses the flexible encoding.
    pub const fn is_flexible(self, version: i16) -> bool {
        match self.first_flexible_version() {
            Some(first) => version >= first,
            None => false,
        }
    }

    /// Request header version: 2 for flexible versions, 1 otherwise.
    ///
    /// Header v0 (no client id) is used only by ControlledShutdown v0,
    /// which no client sends to a broker; it is not modelled.
    pub const fn request_header_version(self, version: i16) -> i16 {
        if self.is_flexible(version) {
            2
        } else {
            1
        }
    }

    /// Response header version: 1 (with tagged fields) for flexible
    /// versions, 0 otherwise.
    ///
    /// ApiVersions is the exception: its response header is always v0,
    /// because a client reads the response before it knows which versions
    /// the broker speaks, so the header must parse under every version.
    pub const fn response_header_version(self, version: i16) -> i16 {
        if matches!(self, ApiKey::ApiVersions) {
            return 0;
        }
        if self.is_flexible(version) {
            1
        } else {
            0
        }
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}({})", self, self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey as OracleKey;

    #[test]
    fn keys_round_trip() {
        for key in ApiKey::ALL {
            assert_eq!(ApiKey::from_key(key.key()), Some(*key));
        }
        assert_eq!(ApiKey::from_key(-1), None);
        assert_eq!(ApiKey::from_key(1000), None);
        assert_eq!(ApiKey::Produce.key(), 0);
        assert_eq!(ApiKey::Fetch.key(), 1);
        assert_eq!(ApiKey::ApiVersions.key(), 18);
        assert_eq!(ApiKey::InitProducerId.key(), 22);
        assert_eq!(ApiKey::DescribeCluster.key(), 60);
    }

    /// The kafka-protocol crate is generated from Kafka's message JSON, so
    /// it is the oracle for header versions over the versions it knows.
    #[test]
    fn header_versions_agree_with_kafka_protocol() {
        let mut checked = 0;
        for raw in 0..200i16 {
            let Ok(oracle) = OracleKey::try_from(raw) else {
                continue;
            };
            let ours = ApiKey::from_key(raw).unwrap_or_else(|| panic!("missing api key {raw}"));
            let range = oracle.valid_versions();
            for version in range.min..=range.max {
                assert_eq!(
                    ours.request_header_version(version),
                    oracle.request_header_version(version),
                    "request header of {ours} v{version}"
                );
                assert_eq!(
                    ours.response_header_version(version),
                    oracle.response_header_version(version),
                    "response header of {ours} v{version}"
                );
                checked += 1;
            }
        }
        assert!(checked > 250, "only {checked} versions checked");
    }

    #[test]
    fn versions_before_kafka_4_minimums_use_classic_headers() {
        // Versions Kafka 4 dropped, which the oracle no longer knows.
        assert_eq!(ApiKey::Produce.request_header_version(0), 1);
        assert_eq!(ApiKey::Fetch.request_header_version(3), 1);
        assert_eq!(ApiKey::WriteTxnMarkers.request_header_version(0), 1);
        assert_eq!(ApiKey::ApiVersions.response_header_version(3), 0);
        assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
        assert_eq!(ApiKey::SaslHandshake.request_header_version(1), 1);
    }
}

//! The admin APIs against the real broker binary, over a plain TCP socket:
//! CreatePartitions, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs, DescribeCluster, DeleteRecords and
//! InitProducerId, each in every advertised version, success and error
//! paths.

#[path = "wire/mod.rs"]
mod wire;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringtail_protocol::batch::BatchBuilder;
use ringtail_protocol::messages::kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use ringtail_protocol::messages::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use ringtail_protocol::messages::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use ringtail_protocol::messages::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use ringtail_protocol::messages::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest,
    AlterConfigsResponse, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, FetchRequest, FetchResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use ringtail_protocol::messages::kafka_protocol::protocol::{Request, StrBytes};
use ringtail_protocol::ErrorCode;

const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_PRODUCER_ID: i16 = 59;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

#[test]
fn the_error_codes_here_are_kafkas() {
    for (code, ours) in [
        (NONE, ErrorCode::None),
        (OFFSET_OUT_OF_RANGE, ErrorCode::OffsetOutOfRange),
        (
            UNKNOWN_TOPIC_OR_PARTITION,
            ErrorCode::UnknownTopicOrPartition,
        ),
        (
            COORDINATOR_NOT_AVAILABLE,
            ErrorCode::CoordinatorNotAvailable,
        ),
        (INVALID_PARTITIONS, ErrorCode::InvalidPartitions),
        (
            INVALID_REPLICA_ASSIGNMENT,
            ErrorCode::InvalidReplicaAssignment,
        ),
        (INVALID_CONFIG, ErrorCode::InvalidConfig),
        (INVALID_REQUEST, ErrorCode::InvalidRequest),
        (UNKNOWN_PRODUCER_ID, ErrorCode::UnknownProducerId),
        (
            UNSUPPORTED_ENDPOINT_TYPE,
            ErrorCode::UnsupportedEndpointType,
        ),
    ] {
        assert_eq!(code, ours.code(), "{ours:?}");
    }
}

// ---------------------------------------------------------------------------
// The broker process and a minimal client.

/// A broker process on a free loopback port; killed (and its directory
/// removed) on drop. A failing test prints the broker's log.
struct Broker {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

impl Broker {
    fn start(name: &str, extra: &[&str]) -> Broker {
        let dir =
            std::env::temp_dir().join(format!("ringtail-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let mut broker = Broker {
            child: None,
            dir,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        broker.spawn();
        broker
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    /// Starts the broker; a port taken since `free_port` chose it gets
    /// another try on a new port.
    fn spawn(&mut self) {
        for _ in 0..3 {
            self.spawn_once();
            if self.wait_ready() {
                return;
            }
            self.port = free_port();
        }
        panic!(
            "the broker could not listen on three ports:\n{}",
            self.log()
        );
    }

    fn spawn_once(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the broker log");
        let data = self.dir.join("data");
        let mut args = vec![
            "broker".to_string(),
            "--override".into(),
            format!("log.dirs={}", data.display()),
            "--override".into(),
            format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port),
            "--override".into(),
            "shard.count=2".into(),
        ];
        for e in &self.extra {
            args.push("--override".into());
            args.push(e.clone());
        }
        let child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
    }

    /// Whether the broker listens; false when it exited because its port
    /// was taken.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                if self.log().contains("cannot listen") {
                    return false;
                }
                panic!("the broker exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not listen within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("a running broker");
        let pid = i32::try_from(child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait for the broker") {
                assert!(status.success(), "broker exit {status}:\n{}", self.log());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the broker did not stop on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn client(&self) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            conn: wire::Conn::new(stream, "admin-apis-test"),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- broker log ({}) ----\n{}",
                self.dir.display(),
                self.log()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

struct Client {
    conn: wire::Conn,
}

impl Client {
    fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        self.conn.call(version, request)
    }

    fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        let response: CreateTopicsResponse = self.call(
            7,
            &CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000),
        );
        assert_eq!(response.topics[0].error_code, NONE, "{response:?}");
    }

    fn partition_count(&mut self, name: &str) -> usize {
        let response: MetadataResponse = self.call(
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name(name)))
                ]))
                .with_allow_auto_topic_creation(false),
        );
        assert_eq!(response.topics[0].error_code, NONE, "{response:?}");
        response.topics[0].partitions.len()
    }

    /// Produces one single-record batch with acks=1; the error code.
    fn produce(&mut self, name: &str, partition: i32, value: &[u8]) -> i16 {
        let mut batch = BatchBuilder::new();
        batch.append(1_700_000_000_000, None, Some(value), &[]);
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(name))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(batch.build())))])]);
        let response: ProduceResponse = self.call(9, &request);
        response.responses[0].partition_responses[0].error_code
    }

    fn earliest_offset(&mut self, name: &str, partition: i32) -> i64 {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-2)])]);
        let response: ListOffsetsResponse = self.call(7, &request);
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, NONE, "{response:?}");
        p.offset
    }

    /// (error code, record bytes) of a fetch at `offset`.
    fn fetch(&mut self, name: &str, partition: i32, offset: i64) -> (i16, usize) {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(name))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = self.call(12, &request);
        let p = &response.responses[0].partitions[0];
        (p.error_code, p.records.as_ref().map_or(0, |r| r.len()))
    }

    fn delete_records(
        &mut self,
        version: i16,
        name: &str,
        partition: i32,
        offset: i64,
    ) -> (i16, i64) {
        let request = DeleteRecordsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])]);
        let response: DeleteRecordsResponse = self.call(version, &request);
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.partition_index, partition);
        (p.error_code, p.low_watermark)
    }

    fn describe(
        &mut self,
        version: i16,
        resource_type: i8,
        name: &str,
        keys: Option<&[&str]>,
        synonyms: bool,
    ) -> DescribeConfigsResult {
        let resource = DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()));
        let mut request = DescribeConfigsRequest::default()
            .with_resources(vec![resource])
            .with_include_synonyms(synonyms);
        if version >= 3 {
            request = request.with_include_documentation(true);
        }
        let mut response: DescribeConfigsResponse = self.call(version, &request);
        assert_eq!(response.results.len(), 1);
        response.results.remove(0)
    }

    fn incremental(
        &mut self,
        version: i16,
        resource_type: i8,
        name: &str,
        ops: &[Op],
    ) -> (i16, String) {
        self.incremental_with(version, resource_type, name, ops, false)
    }

    fn incremental_with(
        &mut self,
        version: i16,
        resource_type: i8,
        name: &str,
        ops: &[Op],
        validate_only: bool,
    ) -> (i16, String) {
        let configs = ops
            .iter()
            .map(|(k, op, v)| {
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(*op)
                    .with_value(v.map(s))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(s(name))
                    .with_configs(configs),
            ]);
        let response: IncrementalAlterConfigsResponse = self.call(version, &request);
        let r = &response.responses[0];
        assert_eq!(
            (r.resource_type, r.resource_name.as_str()),
            (resource_type, name)
        );
        (
            r.error_code,
            r.error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        )
    }

    fn alter(
        &mut self,
        version: i16,
        resource_type: i8,
        name: &str,
        configs: &[(&str, Option<&str>)],
        validate_only: bool,
    ) -> (i16, String) {
        let configs = configs
            .iter()
            .map(|(k, v)| {
                alter_configs_request::AlterableConfig::default()
                    .with_name(s(k))
                    .with_value(v.map(s))
            })
            .collect();
        let request = AlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(configs)]);
        let response: AlterConfigsResponse = self.call(version, &request);
        let r = &response.responses[0];
        assert_eq!(
            (r.resource_type, r.resource_name.as_str()),
            (resource_type, name)
        );
        (
            r.error_code,
            r.error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        )
    }

    fn init_producer_id(
        &mut self,
        version: i16,
        transactional_id: Option<&str>,
        id_and_epoch: Option<(i64, i16)>,
    ) -> InitProducerIdResponse {
        let mut request = InitProducerIdRequest::default()
            .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
            .with_transaction_timeout_ms(60_000);
        if let Some((id, epoch)) = id_and_epoch {
            request = request
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch);
        }
        self.call(version, &request)
    }
}

/// An IncrementalAlterConfigs operation: key, operation, value.
type Op<'a> = (&'a str, i8, Option<&'a str>);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(s(name))
}

fn config<'a>(result: &'a DescribeConfigsResult, key: &str) -> &'a DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} missing from {result:?}"))
}

fn value(c: &DescribeConfigsResourceResult) -> Option<&str> {
    c.value.as_ref().map(|v| v.as_str())
}

// ---------------------------------------------------------------------------

#[test]
fn create_partitions_raises_the_count_and_opens_the_new_partitions() {
    let broker = Broker::start("partitions", &[]);
    let mut c = broker.client();
    c.create_topic("grow", 3, &[]);
    let grow = |count: i32| {
        CreatePartitionsTopic::default()
            .with_name(topic_name("grow"))
            .with_count(count)
    };
    let request = |topics: Vec<CreatePartitionsTopic>, validate_only: bool| {
        CreatePartitionsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only)
    };

    let r: CreatePartitionsResponse = c.call(3, &request(vec![grow(5)], false));
    assert_eq!(r.results[0].error_code, NONE, "{r:?}");
    assert_eq!(r.results[0].name.0.as_str(), "grow");
    assert_eq!(c.partition_count("grow"), 5);
    // The new partitions are open on their owner shards.
    for p in 3..5 {
        assert_eq!(c.produce("grow", p, b"into a new partition"), NONE);
        assert_eq!(c.fetch("grow", p, 0).0, NONE);
    }

    // Not larger: INVALID_PARTITIONS, in every version.
    for version in 0..=3 {
        let r: CreatePartitionsResponse = c.call(version, &request(vec![grow(5)], false));
        assert_eq!(
            r.results[0].error_code, INVALID_PARTITIONS,
            "v{version} {r:?}"
        );
        assert!(r.results[0].error_message.is_some());
    }
    let r: CreatePartitionsResponse = c.call(1, &request(vec![grow(2)], false));
    assert_eq!(r.results[0].error_code, INVALID_PARTITIONS);

    // validate_only checks and changes nothing.
    let r: CreatePartitionsResponse = c.call(2, &request(vec![grow(8)], true));
    assert_eq!(r.results[0].error_code, NONE, "{r:?}");
    let r: CreatePartitionsResponse = c.call(2, &request(vec![grow(4)], true));
    assert_eq!(r.results[0].error_code, INVALID_PARTITIONS, "{r:?}");
    assert_eq!(c.partition_count("grow"), 5);

    // Manual assignments, unknown topics, duplicates, absurd counts.
    let assigned = grow(6).with_assignments(Some(vec![
        CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(0)])
    ]));
    let missing = CreatePartitionsTopic::default()
        .with_name(topic_name("no-such-topic"))
        .with_count(2);
    let r: CreatePartitionsResponse = c.call(3, &request(vec![assigned, missing], false));
    assert_eq!(r.results[0].error_code, INVALID_REPLICA_ASSIGNMENT, "{r:?}");
    assert_eq!(r.results[1].error_code, UNKNOWN_TOPIC_OR_PARTITION, "{r:?}");
    let r: CreatePartitionsResponse = c.call(0, &request(vec![grow(6), grow(7)], false));
    assert_eq!(r.results[0].error_code, INVALID_REQUEST, "{r:?}");
    assert_eq!(r.results[1].error_code, INVALID_REQUEST, "{r:?}");
    let r: CreatePartitionsResponse = c.call(3, &request(vec![grow(i32::MAX)], false));
    assert_eq!(r.results[0].error_code, INVALID_PARTITIONS, "{r:?}");
    assert_eq!(c.partition_count("grow"), 5);

    // v0 grows too, and the count survives a restart.
    let r: CreatePartitionsResponse = c.call(0, &request(vec![grow(6)], false));
    assert_eq!(r.results[0].error_code, NONE, "{r:?}");
    let mut broker = broker;
    broker.restart();
    let mut c = broker.client();
    assert_eq!(c.partition_count("grow"), 6);
    assert_eq!(c.produce("grow", 5, b"after a restart"), NONE);
}

#[test]
fn describe_configs_shows_defaults_overrides_and_broker_values() {
    // A configured broker value is STATIC_BROKER_CONFIG, a built-in DEFAULT_CONFIG.
    let broker = Broker::start("describe", &["log.retention.bytes=1073741824"]);
    let mut c = broker.client();
    c.create_topic("shown", 1, &[("segment.bytes", "1048576")]);

    for version in 1..=4 {
        let r = c.describe(version, TOPIC, "shown", None, true);
        assert_eq!(r.error_code, NONE, "v{version} {r:?}");
        assert_eq!(
            (r.resource_type, r.resource_name.as_str()),
            (TOPIC, "shown")
        );
        assert_eq!(r.configs.len(), 13, "v{version} {r:?}");
        for c in &r.configs {
            assert!(!c.read_only && !c.is_sensitive, "{c:?}");
            assert!(!c.synonyms.is_empty(), "{c:?}");
            // Before v3 the fields are absent (decoded as their defaults).
            if version >= 3 {
                assert_ne!(c.config_type, 0, "v{version} {c:?}");
                assert!(
                    c.documentation.as_ref().is_some_and(|d| !d.is_empty()),
                    "{c:?}"
                );
            }
        }
        let retention = config(&r, "retention.ms");
        assert_eq!(value(retention), Some("604800000"));
        assert_eq!(retention.config_source, SOURCE_DEFAULT);
        assert_eq!(retention.synonyms[0].name.as_str(), "log.retention.ms");
        let bytes = config(&r, "retention.bytes");
        assert_eq!(value(bytes), Some("1073741824"));
        assert_eq!(bytes.config_source, SOURCE_STATIC_BROKER);
        let segment = config(&r, "segment.bytes");
        assert_eq!(value(segment), Some("1048576"));
        assert_eq!(segment.config_source, SOURCE_DYNAMIC_TOPIC);
        let synonyms: Vec<(&str, i8)> = segment
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.source))
            .collect();
        assert_eq!(
            synonyms,
            [
                ("segment.bytes", SOURCE_DYNAMIC_TOPIC),
                ("log.segment.bytes", SOURCE_DEFAULT)
            ]
        );
        if version >= 3 {
            assert_eq!(config(&r, "cleanup.policy").config_type, 7, "LIST");
            assert_eq!(retention.config_type, 5, "LONG");
            assert_eq!(segment.config_type, 3, "INT");
        }
        for key in [
            "cleanup.policy",
            "max.message.bytes",
            "min.insync.replicas",
            "compression.type",
            "message.timestamp.type",
            "index.interval.bytes",
            "delete.retention.ms",
            "segment.ms",
        ] {
            assert_eq!(config(&r, key).config_source, SOURCE_DEFAULT, "{key}");
        }
    }

    // Only the requested keys (unknown ones are left out); no synonyms
    // unless asked.
    let r = c.describe(
        4,
        TOPIC,
        "shown",
        Some(&["retention.ms", "no.such.key"]),
        false,
    );
    assert_eq!(r.configs.len(), 1, "{r:?}");
    assert!(r.configs[0].synonyms.is_empty());

    // The broker: static values, read-only.
    for version in 1..=4 {
        let r = c.describe(version, BROKER, "0", None, true);
        assert_eq!(r.error_code, NONE, "v{version} {r:?}");
        let listeners = config(&r, "listeners");
        assert_eq!(
            value(listeners),
            Some(format!("PLAINTEXT://127.0.0.1:{}", broker.port).as_str())
        );
        assert_eq!(listeners.config_source, SOURCE_STATIC_BROKER);
        assert!(listeners.read_only);
        let segment = config(&r, "log.segment.bytes");
        assert_eq!(value(segment), Some("1073741824"));
        assert_eq!(segment.config_source, SOURCE_DEFAULT);
        assert_eq!(value(config(&r, "log.retention.bytes")), Some("1073741824"));
        assert_eq!(
            config(&r, "log.retention.bytes").config_source,
            SOURCE_STATIC_BROKER
        );
        assert_eq!(value(config(&r, "shard.count")), Some("2"));
        assert_eq!(value(config(&r, "log.cleanup.policy")), Some("delete"));
        assert!(r.configs.iter().all(|c| c.read_only && !c.is_sensitive));
    }
    let r = c.describe(4, BROKER, "0", Some(&["broker.id"]), false);
    assert_eq!(r.configs.len(), 1);
    assert_eq!(value(&r.configs[0]), Some("0"));
    let r = c.describe(2, BROKER, "", None, false);
    assert_eq!((r.error_code, r.configs.len()), (NONE, 0), "{r:?}");

    // Errors.
    let r = c.describe(4, TOPIC, "no-such-topic", None, false);
    assert_eq!(r.error_code, UNKNOWN_TOPIC_OR_PARTITION, "{r:?}");
    assert!(r.configs.is_empty());
    let r = c.describe(1, BROKER, "7", None, false);
    assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
    let r = c.describe(3, 8, "root", None, false);
    assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
    assert!(r.error_message.is_some());
}

#[test]
fn alter_configs_replace_and_incremental_changes_show_in_describe() {
    let broker = Broker::start("alter", &[]);
    let mut c = broker.client();
    c.create_topic("tuned", 2, &[]);
    let source_and_value = |c: &mut Client, key: &str| {
        let r = c.describe(4, TOPIC, "tuned", Some(&[key]), false);
        assert_eq!(r.error_code, NONE, "{r:?}");
        let entry = config(&r, key);
        (entry.config_source, value(entry).map(str::to_string))
    };
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const APPEND: i8 = 2;
    const SUBTRACT: i8 = 3;

    assert_eq!(
        source_and_value(&mut c, "retention.ms"),
        (SOURCE_DEFAULT, Some("604800000".into()))
    );
    for version in 0..=1 {
        let r = c.incremental(
            version,
            TOPIC,
            "tuned",
            &[("retention.ms", SET, Some("1000"))],
        );
        assert_eq!(r.0, NONE, "v{version} {r:?}");
    }
    assert_eq!(
        source_and_value(&mut c, "retention.ms"),
        (SOURCE_DYNAMIC_TOPIC, Some("1000".into()))
    );

    // APPEND starts from the inherited value, SUBTRACT from the override.
    let r = c.incremental(
        1,
        TOPIC,
        "tuned",
        &[("cleanup.policy", APPEND, Some("compact"))],
    );
    assert_eq!(r.0, NONE, "{r:?}");
    assert_eq!(
        source_and_value(&mut c, "cleanup.policy"),
        (SOURCE_DYNAMIC_TOPIC, Some("delete,compact".into()))
    );
    let r = c.incremental(
        0,
        TOPIC,
        "tuned",
        &[("cleanup.policy", SUBTRACT, Some("delete"))],
    );
    assert_eq!(r.0, NONE, "{r:?}");
    assert_eq!(
        source_and_value(&mut c, "cleanup.policy").1.as_deref(),
        Some("compact")
    );

    // validate_only changes nothing.
    let r = c.incremental_with(1, TOPIC, "tuned", &[("retention.ms", SET, Some("5"))], true);
    assert_eq!(r.0, NONE, "{r:?}");
    assert_eq!(
        source_and_value(&mut c, "retention.ms").1.as_deref(),
        Some("1000")
    );

    // DELETE returns the key to the broker's value.
    let r = c.incremental(1, TOPIC, "tuned", &[("retention.ms", DELETE, None)]);
    assert_eq!(r.0, NONE, "{r:?}");
    assert_eq!(
        source_and_value(&mut c, "retention.ms"),
        (SOURCE_DEFAULT, Some("604800000".into()))
    );

    // Incremental errors; a failed change leaves everything as it was.
    let cases: [(&[Op], i16, &str); 6] = [
        (
            &[("retention.ms", APPEND, Some("5"))],
            INVALID_CONFIG,
            "retention.ms",
        ),
        (
            &[("segment.bytes", SET, Some("tiny"))],
            INVALID_CONFIG,
            "segment.bytes",
        ),
        (
            &[("no.such.key", SET, Some("1"))],
            INVALID_CONFIG,
            "no.such.key",
        ),
        (
            &[("retention.ms", SET, None)],
            INVALID_REQUEST,
            "retention.ms",
        ),
        (
            &[("retention.ms", 9, Some("1"))],
            INVALID_REQUEST,
            "retention.ms",
        ),
        (
            &[
                ("retention.ms", SET, Some("1")),
                ("retention.ms", DELETE, None),
            ],
            INVALID_REQUEST,
            "retention.ms",
        ),
    ];
    for (ops, code, named) in cases {
        let (got, message) = c.incremental(1, TOPIC, "tuned", ops);
        assert_eq!(got, code, "{ops:?}: {message}");
        assert!(message.contains(named), "{ops:?}: {message}");
    }
    let r = c.incremental(
        1,
        TOPIC,
        "no-such-topic",
        &[("retention.ms", SET, Some("1"))],
    );
    assert_eq!(r.0, UNKNOWN_TOPIC_OR_PARTITION, "{r:?}");
    let r = c.incremental(1, BROKER, "0", &[("log.retention.ms", SET, Some("1"))]);
    assert_eq!(r.0, INVALID_REQUEST, "{r:?}");
    assert!(r.1.contains("static"), "{r:?}");
    assert_eq!(
        source_and_value(&mut c, "cleanup.policy").1.as_deref(),
        Some("compact")
    );

    // AlterConfigs replaces the whole set: cleanup.policy goes back to the
    // broker's value.
    for version in 0..=2 {
        let r = c.alter(
            version,
            TOPIC,
            "tuned",
            &[("segment.bytes", Some("2097152")), ("retention.ms", None)],
            false,
        );
        assert_eq!(r.0, NONE, "v{version} {r:?}");
    }
    assert_eq!(
        source_and_value(&mut c, "segment.bytes"),
        (SOURCE_DYNAMIC_TOPIC, Some("2097152".into()))
    );
    assert_eq!(
        source_and_value(&mut c, "cleanup.policy"),
        (SOURCE_DEFAULT, Some("delete".into()))
    );
    assert_eq!(source_and_value(&mut c, "retention.ms").0, SOURCE_DEFAULT);

    // A bad value names the key and changes nothing; validate_only too.
    let (code, message) = c.alter(2, TOPIC, "tuned", &[("segment.bytes", Some("abc"))], false);
    assert_eq!(code, INVALID_CONFIG);
    assert!(message.contains("segment.bytes"), "{message}");
    let (code, message) = c.alter(1, TOPIC, "tuned", &[("retention.ms", Some("-7"))], true);
    assert_eq!(code, INVALID_CONFIG);
    assert!(message.contains("retention.ms"), "{message}");
    let r = c.alter(1, TOPIC, "tuned", &[("retention.ms", Some("77"))], true);
    assert_eq!(r.0, NONE, "{r:?}");
    assert_eq!(
        source_and_value(&mut c, "segment.bytes").1.as_deref(),
        Some("2097152")
    );
    assert_eq!(source_and_value(&mut c, "retention.ms").0, SOURCE_DEFAULT);

    let r = c.alter(0, BROKER, "0", &[("log.retention.ms", Some("1"))], false);
    assert_eq!(r.0, INVALID_REQUEST, "{r:?}");
    assert!(r.1.contains("broker configs are static"), "{r:?}");
    let r = c.alter(2, TOPIC, "no-such-topic", &[], false);
    assert_eq!(r.0, UNKNOWN_TOPIC_OR_PARTITION, "{r:?}");
    let r = c.alter(2, 3, "x", &[], false);
    assert_eq!(r.0, INVALID_REQUEST, "{r:?}");

    // List items are stored without blanks (the topic table is
    // space-separated), so a restart reads them back.
    let r = c.incremental(
        1,
        TOPIC,
        "tuned",
        &[("cleanup.policy", SET, Some("compact, delete"))],
    );
    assert_eq!(r.0, NONE, "{r:?}");
    assert_eq!(
        source_and_value(&mut c, "cleanup.policy").1.as_deref(),
        Some("compact,delete")
    );

    // Overrides persist across a restart.
    let mut broker = broker;
    broker.restart();
    let mut c = broker.client();
    assert_eq!(
        source_and_value(&mut c, "segment.bytes"),
        (SOURCE_DYNAMIC_TOPIC, Some("2097152".into()))
    );
    assert_eq!(
        source_and_value(&mut c, "cleanup.policy"),
        (SOURCE_DYNAMIC_TOPIC, Some("compact,delete".into()))
    );
    let r = c.alter(
        2,
        TOPIC,
        "tuned",
        &[("cleanup.policy", Some("delete ,compact"))],
        false,
    );
    assert_eq!(r.0, NONE, "{r:?}");
    broker.restart();
    let mut c = broker.client();
    assert_eq!(
        source_and_value(&mut c, "cleanup.policy").1.as_deref(),
        Some("delete,compact")
    );
}

#[test]
fn describe_cluster_names_this_broker() {
    let broker = Broker::start("cluster", &[]);
    let mut c = broker.client();
    let metadata: MetadataResponse =
        c.call(12, &MetadataRequest::default().with_topics(Some(vec![])));
    let cluster_id = metadata.cluster_id.expect("a cluster id");
    for version in 0..=1 {
        let r: DescribeClusterResponse = c.call(version, &DescribeClusterRequest::default());
        assert_eq!(r.error_code, NONE, "v{version} {r:?}");
        assert_eq!(r.cluster_id, cluster_id);
        assert_eq!(r.controller_id, BrokerId(0));
        assert_eq!(r.endpoint_type, 1);
        assert_eq!(r.brokers.len(), 1);
        let b = &r.brokers[0];
        assert_eq!(
            (b.broker_id, b.host.as_str(), b.port),
            (BrokerId(0), "127.0.0.1", i32::from(broker.port))
        );
        assert_eq!(b.rack, None);
    }
    let r: DescribeClusterResponse =
        c.call(1, &DescribeClusterRequest::default().with_endpoint_type(2));
    assert_eq!(r.error_code, UNSUPPORTED_ENDPOINT_TYPE, "{r:?}");
    assert!(r.error_message.is_some());
    assert!(r.brokers.is_empty());
}

#[test]
fn delete_records_moves_the_log_start() {
    let broker = Broker::start("records", &["log.segment.bytes=1024"]);
    let mut c = broker.client();
    c.create_topic("trim", 2, &[]);
    for i in 0..10 {
        for p in 0..2 {
            assert_eq!(c.produce("trim", p, &[i; 200]), NONE);
        }
    }
    assert_eq!(c.earliest_offset("trim", 0), 0);

    for (version, partition) in [(0, 0), (2, 1)] {
        assert_eq!(c.delete_records(version, "trim", partition, 4), (NONE, 4));
        assert_eq!(c.earliest_offset("trim", partition), 4);
        assert_eq!(c.fetch("trim", partition, 2).0, OFFSET_OUT_OF_RANGE);
        let (code, bytes) = c.fetch("trim", partition, 4);
        assert_eq!(code, NONE);
        assert!(bytes > 0);
    }
    // Below the start: the start stays. Beyond the high watermark: refused.
    assert_eq!(c.delete_records(1, "trim", 0, 2), (NONE, 4));
    assert_eq!(c.delete_records(1, "trim", 0, 11).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(c.delete_records(1, "trim", 0, -5).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(c.earliest_offset("trim", 0), 4);
    // -1: everything up to the high watermark.
    assert_eq!(c.delete_records(2, "trim", 0, -1), (NONE, 10));
    assert_eq!(c.earliest_offset("trim", 0), 10);
    assert_eq!(c.fetch("trim", 0, 9).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(c.produce("trim", 0, b"after"), NONE);
    assert_eq!(c.fetch("trim", 0, 10).0, NONE);

    assert_eq!(
        c.delete_records(2, "trim", 2, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        c.delete_records(2, "no-such-topic", 0, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // The new start survives a restart.
    let mut broker = broker;
    broker.restart();
    let mut c = broker.client();
    assert_eq!(c.earliest_offset("trim", 0), 10);
    assert_eq!(c.earliest_offset("trim", 1), 4);
}

#[test]
fn init_producer_id_hands_out_unique_ids_and_bumps_epochs() {
    let mut broker = Broker::start("producer-ids", &[]);
    let mut c = broker.client();
    let mut seen = Vec::new();
    for version in 0..=5 {
        let r = c.init_producer_id(version, None, None);
        assert_eq!(
            (r.error_code, r.producer_epoch),
            (NONE, 0),
            "v{version} {r:?}"
        );
        assert!(r.producer_id.0 >= 0);
        assert!(!seen.contains(&r.producer_id.0), "{seen:?} {r:?}");
        seen.push(r.producer_id.0);
    }

    // KIP-360 bump: the same id, the next epoch.
    let id = seen[0];
    for version in 3..=5 {
        let r = c.init_producer_id(version, None, Some((id, 4)));
        assert_eq!(
            (r.error_code, r.producer_id.0, r.producer_epoch),
            (NONE, id, 5),
            "v{version} {r:?}"
        );
    }
    // An exhausted epoch moves to a new id.
    let r = c.init_producer_id(4, None, Some((id, i16::MAX - 1)));
    assert_eq!((r.error_code, r.producer_epoch), (NONE, 0), "{r:?}");
    assert!(!seen.contains(&r.producer_id.0), "{r:?}");
    seen.push(r.producer_id.0);

    // Ids never issued, half-set pairs, transactions.
    let r = c.init_producer_id(5, None, Some((1 << 40, 0)));
    assert_eq!(r.error_code, UNKNOWN_PRODUCER_ID, "{r:?}");
    let r = c.init_producer_id(5, None, Some((id, -1)));
    assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
    let r = c.init_producer_id(5, None, Some((-1, 3)));
    assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
    let r = c.init_producer_id(5, Some(""), None);
    assert_eq!(r.error_code, INVALID_REQUEST, "{r:?}");
    for version in [0, 5] {
        let r = c.init_producer_id(version, Some("orders-tx"), None);
        assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE, "{r:?}");
        assert_eq!(r.producer_id.0, -1);
    }

    // After a restart no id repeats, and old ids can still be bumped.
    broker.restart();
    let mut c = broker.client();
    for _ in 0..3 {
        let r = c.init_producer_id(4, None, None);
        assert_eq!(r.error_code, NONE, "{r:?}");
        assert!(!seen.contains(&r.producer_id.0), "{seen:?} {r:?}");
        assert!(r.producer_id.0 > *seen.iter().max().expect("ids"), "{r:?}");
        seen.push(r.producer_id.0);
    }
    let r = c.init_producer_id(3, None, Some((id, 0)));
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (NONE, id, 1),
        "{r:?}"
    );
}

//! `ringtail topics`, like `kafka-topics.sh`: `--create`, `--list`,
//! `--describe`, `--alter --partitions`, `--delete`, with Kafka's flag
//! names and output. Errors print `Error while executing topic command :`
//! with Kafka's error name and message, and exit 1.

use std::process::ExitCode;

use clap::{ArgGroup, Args};
use ringtail_protocol::messages::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use ringtail_protocol::messages::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use ringtail_protocol::messages::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use ringtail_protocol::messages::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use ringtail_protocol::messages::kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;
use ringtail_protocol::ErrorCode;

use super::client::{self, Client, ClientError, PartitionInfo, TopicInfo};

/// How long the broker may take over a create, alter or delete
/// (kafka-topics.sh's default).
const TIMEOUT_MS: i32 = 30_000;
/// DescribeConfigs' resource type for topics.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs' source for a topic's own override.
const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// DescribeConfigs' source for a config nobody set (Kafka leaves these out
/// of `--describe`).
const SOURCE_DEFAULT_CONFIG: i8 = 5;

#[derive(Args, Debug, Clone)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .args(["create", "list", "describe", "alter", "delete"])
))]
pub struct TopicsArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// Create a new topic.
    #[arg(long)]
    pub create: bool,
    /// List all available topics.
    #[arg(long)]
    pub list: bool,
    /// Describe the given topic, or all topics.
    #[arg(long)]
    pub describe: bool,
    /// Change the number of partitions of a topic (it can only grow).
    #[arg(long)]
    pub alter: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// The topic to create, alter, describe or delete.
    #[arg(long)]
    pub topic: Option<String>,
    /// Partitions of the topic being created or altered (default for
    /// --create: the broker's num.partitions).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor of the topic being created (default: the
    /// broker's default.replication.factor).
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// A topic config override for --create, key=value; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub configs: Vec<String>,
    /// With --create: succeed if the topic already exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// With --alter or --delete: succeed if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// With --list or --describe: leave internal topics out.
    #[arg(long)]
    pub exclude_internal: bool,
    /// With --describe: only topics with their own config overrides.
    #[arg(long)]
    pub topics_with_overrides: bool,
    /// With --describe: only partitions whose ISR is smaller than their
    /// replica set.
    #[arg(long)]
    pub under_replicated_partitions: bool,
    /// With --describe: only partitions without a leader.
    #[arg(long)]
    pub unavailable_partitions: bool,
}

/// Why a topic command failed, as kafka-topics.sh words it.
#[derive(Debug)]
struct CommandError(String);

impl From<ClientError> for CommandError {
    fn from(e: ClientError) -> Self {
        CommandError(e.to_string())
    }
}

type Outcome = Result<(), CommandError>;

/// Runs the command; prints Kafka's error line and exits 1 on failure.
pub fn run(args: &TopicsArgs) -> ExitCode {
    match execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CommandError(message)) => {
            eprintln!("Error while executing topic command : {message}");
            ExitCode::from(1)
        }
    }
}

fn execute(args: &TopicsArgs) -> Outcome {
    check_args(args)?;
    let mut client = Client::bootstrap(&args.bootstrap_server, "ringtail-topics")?;
    if args.create {
        create(&mut client, args)
    } else if args.list {
        list(&mut client, args)
    } else if args.describe {
        describe(&mut client, args)
    } else if args.alter {
        alter(&mut client, args)
    } else {
        delete(&mut client, args)
    }
}

/// The checks kafka-topics.sh makes before it connects.
fn check_args(args: &TopicsArgs) -> Outcome {
    let fail = |m: &str| Err(CommandError(m.to_owned()));
    if (args.create || args.alter || args.delete) && args.topic.is_none() {
        return fail("--topic is required with --create, --alter and --delete");
    }
    if let Some(p) = args.partitions {
        if p < 1 {
            return fail("The partitions must be greater than 0");
        }
    }
    if let Some(r) = args.replication_factor {
        if r < 1 {
            return fail("The replication factor must be greater than 0");
        }
    }
    if args.alter && args.partitions.is_none() {
        return fail("--partitions is required with --alter");
    }
    if !args.create && (args.replication_factor.is_some() || !args.configs.is_empty()) {
        return fail("--replication-factor and --config are only valid with --create (use kafka-configs for config changes)");
    }
    if !args.create && !args.alter && args.partitions.is_some() {
        return fail("--partitions is only valid with --create and --alter");
    }
    if (args.topics_with_overrides
        || args.under_replicated_partitions
        || args.unavailable_partitions)
        && !args.describe
    {
        return fail("--topics-with-overrides, --under-replicated-partitions and --unavailable-partitions are only valid with --describe");
    }
    if args.if_not_exists && !args.create {
        return fail("--if-not-exists is only valid with --create");
    }
    if args.if_exists && !(args.alter || args.delete) {
        return fail("--if-exists is only valid with --alter and --delete");
    }
    Ok(())
}

/// `key=value` pairs of `--config`.
fn parse_configs(configs: &[String]) -> Result<Vec<(String, String)>, CommandError> {
    configs
        .iter()
        .map(|c| match c.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(CommandError(format!(
                "Invalid topic config {c:?}: all configs to be added must be in the format \"key=val\"."
            ))),
        })
        .collect()
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn create(client: &mut Client, args: &TopicsArgs) -> Outcome {
    let name = args.topic.as_deref().expect("checked by check_args");
    if name.contains('.') || name.contains('_') {
        println!(
            "WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both."
        );
    }
    let configs = parse_configs(&args.configs)?
        .into_iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(str_bytes(&k))
                .with_value(Some(str_bytes(&v)))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(TopicName(str_bytes(name)))
        .with_num_partitions(args.partitions.unwrap_or(-1))
        .with_replication_factor(args.replication_factor.unwrap_or(-1))
        .with_configs(configs);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(TIMEOUT_MS);
    let response = client.send(&request)?;
    let result = response
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == name)
        .ok_or_else(|| {
            CommandError(format!(
                "the broker's answer does not mention topic '{name}'"
            ))
        })?;
    match ClientError::from_code(result.error_code, result.error_message.as_ref()) {
        None => {
            println!("Created topic {name}.");
            Ok(())
        }
        Some(_)
            if args.if_not_exists && result.error_code == ErrorCode::TopicAlreadyExists.code() =>
        {
            Ok(())
        }
        Some(e) => Err(e.into()),
    }
}

/// Topics from Metadata (all of them for `None`), without auto-creating
/// any; unknown topics are left out, other errors fail.
fn topics(client: &mut Client, name: Option<&str>) -> Result<Vec<TopicInfo>, CommandError> {
    let names = name.map(|n| [n]);
    let response = client.metadata(names.as_ref().map(|n| &n[..]), false)?;
    let mut found = Vec::new();
    for (code, topic) in client::topics_of(&response) {
        if code == ErrorCode::UnknownTopicOrPartition.code() {
            continue;
        }
        if let Some(e) = ClientError::from_code(code, None) {
            return Err(CommandError(format!("topic '{}': {e}", topic.name)));
        }
        found.push(topic);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn filtered(args: &TopicsArgs, topics: Vec<TopicInfo>) -> Vec<TopicInfo> {
    topics
        .into_iter()
        .filter(|t| !(args.exclude_internal && t.is_internal))
        .collect()
}

fn list(client: &mut Client, args: &TopicsArgs) -> Outcome {
    for t in filtered(args, topics(client, args.topic.as_deref())?) {
        println!("{}", t.name);
    }
    Ok(())
}

fn does_not_exist(name: &str) -> CommandError {
    CommandError(format!("Topic '{name}' does not exist as expected"))
}

/// Which parts `--describe` prints, by Kafka's report flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    pub topics_with_overrides: bool,
    pub under_replicated: bool,
    pub unavailable: bool,
}

impl Report {
    fn of(args: &TopicsArgs) -> Report {
        Report {
            topics_with_overrides: args.topics_with_overrides,
            under_replicated: args.under_replicated_partitions,
            unavailable: args.unavailable_partitions,
        }
    }

    /// Kafka prints the topic line unless a partition report is asked
    /// for; with --topics-with-overrides only for overridden topics.
    fn topic_line(&self, has_overrides: bool) -> bool {
        !self.under_replicated
            && !self.unavailable
            && (!self.topics_with_overrides || has_overrides)
    }

    /// Partition lines: all of them, none with --topics-with-overrides,
    /// or those matching a partition report.
    fn partition_line(&self, p: &PartitionInfo) -> bool {
        if self.topics_with_overrides {
            return false;
        }
        if !self.under_replicated && !self.unavailable {
            return true;
        }
        (self.under_replicated && p.isr.len() < p.replicas.len())
            || (self.unavailable && p.leader < 0)
    }
}

fn describe(client: &mut Client, args: &TopicsArgs) -> Outcome {
    let found = filtered(args, topics(client, args.topic.as_deref())?);
    if let (Some(name), true) = (args.topic.as_deref(), found.is_empty()) {
        return Err(does_not_exist(name));
    }
    let report = Report::of(args);
    // A broker that advertises DescribeConfigs but closes the connection
    // on it (no handler) gets asked once; the topics still print.
    let mut configs_work = client.supports(ringtail_protocol::ApiKey::DescribeConfigs);
    for topic in &found {
        let configs = if configs_work {
            match topic_configs(client, &topic.name) {
                Ok(c) => c,
                Err(ClientError::Closed { .. }) | Err(ClientError::Unsupported { .. }) => {
                    configs_work = false;
                    *client = Client::bootstrap(&args.bootstrap_server, "ringtail-topics")?;
                    Vec::new()
                }
                Err(e) => return Err(CommandError(format!("topic '{}': {e}", topic.name))),
            }
        } else {
            Vec::new()
        };
        print!("{}", describe_text(topic, &configs, report));
    }
    Ok(())
}

/// One entry of a topic's DescribeConfigs answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
}

/// The configs of a topic that are not defaults, in the broker's order.
fn topic_configs(client: &mut Client, name: &str) -> Result<Vec<ConfigEntry>, ClientError> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(None)]);
    let response = client.send(&request)?;
    let mut entries = Vec::new();
    for result in &response.results {
        if let Some(e) = ClientError::from_code(result.error_code, result.error_message.as_ref()) {
            return Err(e);
        }
        for c in &result.configs {
            if c.config_source == SOURCE_DEFAULT_CONFIG {
                continue;
            }
            entries.push(ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: c.config_source,
            });
        }
    }
    Ok(entries)
}

fn node_list(nodes: &[i32]) -> String {
    nodes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Kafka's `--describe` text for one topic: a summary line, then one
/// tab-indented line per partition, each as `report` selects.
pub fn describe_text(topic: &TopicInfo, configs: &[ConfigEntry], report: Report) -> String {
    let mut out = String::new();
    let has_overrides = configs
        .iter()
        .any(|c| c.source == SOURCE_DYNAMIC_TOPIC_CONFIG);
    if report.topic_line(has_overrides) {
        let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
        let configs: Vec<String> = configs
            .iter()
            .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
            .collect();
        out.push_str(&format!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
            topic.name,
            client::topic_id_string(&topic.id),
            topic.partitions.len(),
            replication,
            configs.join(",")
        ));
    }
    for p in topic.partitions.iter().filter(|p| report.partition_line(p)) {
        let leader = if p.leader < 0 {
            "none".to_owned()
        } else {
            p.leader.to_string()
        };
        out.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\n",
            topic.name,
            p.index,
            leader,
            node_list(&p.replicas),
            node_list(&p.isr)
        ));
    }
    out
}

fn alter(client: &mut Client, args: &TopicsArgs) -> Outcome {
    let name = args.topic.as_deref().expect("checked by check_args");
    if topics(client, Some(name))?.is_empty() {
        return if args.if_exists {
            Ok(())
        } else {
            Err(does_not_exist(name))
        };
    }
    let count = args.partitions.expect("checked by check_args");
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(str_bytes(name)))
            .with_count(count)
            .with_assignments(None)])
        .with_timeout_ms(TIMEOUT_MS);
    let response = client.send(&request).map_err(|e| match e {
        ClientError::Closed { addr, .. } => CommandError(format!(
            "the broker at {addr} does not answer CreatePartitions (closed the connection)"
        )),
        other => other.into(),
    })?;
    for r in &response.results {
        if let Some(e) = ClientError::from_code(r.error_code, r.error_message.as_ref()) {
            return Err(e.into());
        }
    }
    Ok(())
}

fn delete(client: &mut Client, args: &TopicsArgs) -> Outcome {
    let name = args.topic.as_deref().expect("checked by check_args");
    if topics(client, Some(name))?.is_empty() {
        return if args.if_exists {
            Ok(())
        } else {
            Err(does_not_exist(name))
        };
    }
    let version = client.version::<DeleteTopicsRequest>()?;
    let mut request = DeleteTopicsRequest::default().with_timeout_ms(TIMEOUT_MS);
    // v6 names topics in `topics` (name or id); before that in
    // `topic_names`.
    if version >= 6 {
        request.topics =
            vec![DeleteTopicState::default().with_name(Some(TopicName(str_bytes(name))))];
    } else {
        request.topic_names = vec![TopicName(str_bytes(name))];
    }
    let response = client.roundtrip(version, &request)?;
    for r in &response.responses {
        if let Some(e) = ClientError::from_code(r.error_code, r.error_message.as_ref()) {
            return Err(e.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TopicInfo {
        TopicInfo {
            name: "orders".into(),
            id: [0; 16],
            is_internal: false,
            partitions: (0..2)
                .map(|index| PartitionInfo {
                    index,
                    error_code: 0,
                    leader: if index == 0 { 0 } else { -1 },
                    replicas: vec![0, 1],
                    isr: if index == 0 { vec![0, 1] } else { vec![0] },
                })
                .collect(),
        }
    }

    fn entry(name: &str, value: &str, source: i8) -> ConfigEntry {
        ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            source,
        }
    }

    #[test]
    fn describe_matches_kafkas_layout() {
        let configs = [
            entry("cleanup.policy", "compact", SOURCE_DYNAMIC_TOPIC_CONFIG),
            entry("segment.bytes", "1048576", 4),
        ];
        assert_eq!(
            describe_text(&sample(), &configs, Report::default()),
            "Topic: orders\tTopicId: AAAAAAAAAAAAAAAAAAAAAA\tPartitionCount: 2\tReplicationFactor: 2\tConfigs: cleanup.policy=compact,segment.bytes=1048576\n\
             \tTopic: orders\tPartition: 0\tLeader: 0\tReplicas: 0,1\tIsr: 0,1\n\
             \tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 0,1\tIsr: 0\n"
        );
    }

    #[test]
    fn describe_reports_select_like_kafka() {
        let under = Report {
            under_replicated: true,
            ..Report::default()
        };
        assert_eq!(
            describe_text(&sample(), &[], under),
            "\tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 0,1\tIsr: 0\n"
        );
        let overrides = Report {
            topics_with_overrides: true,
            ..Report::default()
        };
        assert_eq!(
            describe_text(&sample(), &[entry("segment.bytes", "1", 4)], overrides),
            ""
        );
        let text = describe_text(
            &sample(),
            &[entry("retention.ms", "1", SOURCE_DYNAMIC_TOPIC_CONFIG)],
            overrides,
        );
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn configs_must_be_key_value() {
        let ok = parse_configs(&["retention.ms=1000".into(), "a= b ".into()]).expect("valid");
        assert_eq!(
            ok,
            vec![
                ("retention.ms".to_owned(), "1000".to_owned()),
                ("a".to_owned(), "b".to_owned())
            ]
        );
        assert!(parse_configs(&["retention.ms".into()]).is_err());
        assert!(parse_configs(&["=1".into()]).is_err());
    }
}

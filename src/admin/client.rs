//! A small blocking Kafka client: one `std::net::TcpStream` per broker,
//! an ApiVersions handshake on connect, then one request at a time with
//! correlation ids checked on every answer.
//!
//! It is what the admin CLI and console tools need and no more: no
//! pipelining, no async, no retries hidden inside. Callers decide what is
//! retriable from the error codes they get back.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;
use ringtail_protocol::messages::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use ringtail_protocol::messages::kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::{
    Decodable, Message, Request, StrBytes,
};
use ringtail_protocol::messages::{self, MessageError};
use ringtail_protocol::{frame, ApiKey, CorrelationId, ErrorCode};
use thiserror::Error;

/// The largest response frame accepted; a bigger size prefix means the
/// stream is not speaking Kafka (or is corrupt) and the connection is
/// dropped instead of allocating.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// How long a connect may take per address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Kafka's default `request.timeout.ms`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong talking to a broker.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// The broker closed the connection instead of answering: what Kafka
    /// does with a request it cannot parse or does not serve.
    #[error("{addr} closed the connection without answering {api} v{version}")]
    Closed {
        addr: String,
        api: ApiKey,
        version: i16,
    },
    #[error("{addr} does not support {api} in a version this tool speaks ({detail})")]
    Unsupported {
        addr: String,
        api: ApiKey,
        detail: String,
    },
    #[error("invalid response from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// A Kafka error code with the broker's message, if any.
    #[error("{}", broker_error_text(*.code, .message.as_deref()))]
    Broker { code: i16, message: Option<String> },
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// A broker error from a response's error code; `None` for `NONE`.
    pub fn from_code(code: i16, message: Option<&StrBytes>) -> Option<ClientError> {
        (code != 0).then(|| ClientError::Broker {
            code,
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        })
    }

    /// The Kafka error code, for broker errors.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Kafka's name for a wire error code, e.g. `TOPIC_ALREADY_EXISTS`.
pub fn error_name(code: i16) -> String {
    ErrorCode::from_code(code).map_or_else(
        || format!("UNKNOWN_ERROR_CODE_{code}"),
        |e| e.name().to_owned(),
    )
}

fn broker_error_text(code: i16, message: Option<&str>) -> String {
    match message {
        Some(m) => format!("{}: {m}", error_name(code)),
        None => error_name(code),
    }
}

/// Whether Kafka marks a wire error code retriable.
pub fn is_retriable(code: i16) -> bool {
    ErrorCode::from_code(code).is_some_and(ErrorCode::is_retriable)
}

/// One connection to one broker.
pub struct Client {
    stream: TcpStream,
    addr: String,
    client_id: String,
    next_correlation: i32,
    /// The broker's advertised (min, max) per API key.
    versions: HashMap<i16, (i16, i16)>,
    buf: BytesMut,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

/// Parses Kafka's `--bootstrap-server host:port[,host:port...]`.
pub fn parse_bootstrap(servers: &str) -> Result<Vec<String>, ClientError> {
    let list: Vec<String> = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if list.is_empty() {
        return Err(ClientError::Other("--bootstrap-server is empty".into()));
    }
    for s in &list {
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return Err(ClientError::Other(format!(
                    "invalid bootstrap server {s:?}: expected host:port"
                )))
            }
        }
    }
    Ok(list)
}

impl Client {
    /// Connects to the first reachable server of a `--bootstrap-server`
    /// list and does the ApiVersions handshake.
    pub fn bootstrap(servers: &str, client_id: &str) -> Result<Client, ClientError> {
        let mut last = None;
        for addr in parse_bootstrap(servers)? {
            match Client::connect(&addr, client_id) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("parse_bootstrap returns at least one server"))
    }

    /// Connects to one `host:port` and does the ApiVersions handshake.
    pub fn connect(addr: &str, client_id: &str) -> Result<Client, ClientError> {
        let connect_error = |source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let resolved: Vec<SocketAddr> = addr.to_socket_addrs().map_err(connect_error)?.collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        let mut stream = None;
        for sa in resolved {
            match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_error(last))?;
        let io = |source| ClientError::Io {
            addr: addr.to_owned(),
            source,
        };
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        stream
            .set_write_timeout(Some(REQUEST_TIMEOUT))
            .map_err(io)?;
        let mut client = Client {
            stream,
            addr: addr.to_owned(),
            client_id: client_id.to_owned(),
            next_correlation: 0,
            versions: HashMap::new(),
            buf: BytesMut::new(),
        };
        client.handshake()?;
        Ok(client)
    }

    /// Changes how long a request may wait for its answer (default
    /// [`REQUEST_TIMEOUT`]); JoinGroup waits up to the rebalance timeout.
    pub fn set_request_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let result = self.stream.set_read_timeout(Some(timeout));
        result.map_err(|e| self.io_error(e))
    }

    /// The `host:port` this client is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn handshake(&mut self) -> Result<(), ClientError> {
        // v3 carries the client's software name; a broker that does not
        // know v3 answers in v0 with UNSUPPORTED_VERSION, and v0 is
        // understood by every broker.
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("ringtail-admin"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.roundtrip(3, &request)?;
        if response.error_code == ErrorCode::UnsupportedVersion.code() {
            response = self.roundtrip(0, &ApiVersionsRequest::default())?;
        }
        if let Some(e) = ClientError::from_code(response.error_code, None) {
            return Err(e);
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// Whether the broker advertises `api` at all.
    pub fn supports(&self, api: ApiKey) -> bool {
        self.versions.contains_key(&api.key())
    }

    /// The highest version of `T` both this client and the broker speak.
    pub fn version<T: Request>(&self) -> Result<i16, ClientError> {
        let api = ApiKey::from_key(T::KEY)
            .ok_or_else(|| ClientError::Other(format!("unknown API key {}", T::KEY)))?;
        let unsupported = |detail: String| ClientError::Unsupported {
            addr: self.addr.clone(),
            api,
            detail,
        };
        let &(min, max) = self
            .versions
            .get(&T::KEY)
            .ok_or_else(|| unsupported("not advertised".into()))?;
        let ours = T::VERSIONS;
        let version = max.min(ours.max);
        if version < min.max(ours.min) {
            return Err(unsupported(format!(
                "broker {min}..={max}, client {}..={}",
                ours.min, ours.max
            )));
        }
        Ok(version)
    }

    /// Like [`Client::version`], at most `cap`: for requests whose later
    /// versions need fields the caller does not fill (Produce v13 and
    /// Fetch v13 name topics by id only).
    pub fn version_at_most<T: Request>(&self, cap: i16) -> Result<i16, ClientError> {
        let version = self.version::<T>()?;
        let &(min, _) = self.versions.get(&T::KEY).expect("checked by version");
        if cap < min.max(T::VERSIONS.min) {
            return Err(ClientError::Unsupported {
                addr: self.addr.clone(),
                api: ApiKey::from_key(T::KEY).expect("checked by version"),
                detail: format!("broker needs v{min} or later, this tool sends up to v{cap}"),
            });
        }
        Ok(version.min(cap))
    }

    /// Sends `request` in the highest common version and waits for the
    /// answer.
    pub fn send<T: Request>(&mut self, request: &T) -> Result<T::Response, ClientError> {
        let version = self.version::<T>()?;
        self.roundtrip(version, request)
    }

    /// Sends `request` in `version` and waits for the answer.
    pub fn roundtrip<T: Request>(
        &mut self,
        version: i16,
        request: &T,
    ) -> Result<T::Response, ClientError> {
        let correlation_id = self.write_request(version, request)?;
        self.read_response::<T>(version, correlation_id)
    }

    /// Sends a request the broker does not answer (Produce with acks=0).
    pub fn send_only<T: Request>(&mut self, version: i16, request: &T) -> Result<(), ClientError> {
        self.write_request(version, request).map(|_| ())
    }

    fn io_error(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn write_request<T: Request>(
        &mut self,
        version: i16,
        request: &T,
    ) -> Result<CorrelationId, ClientError> {
        let correlation_id = CorrelationId(self.next_correlation);
        self.next_correlation = self.next_correlation.wrapping_add(1);
        self.buf.clear();
        messages::encode_request_frame(
            version,
            correlation_id,
            Some(&self.client_id),
            request,
            &mut self.buf,
        )
        .map_err(|e: MessageError| ClientError::Other(e.to_string()))?;
        let result = self.stream.write_all(&self.buf);
        result.map_err(|e| self.io_error(e))?;
        Ok(correlation_id)
    }

    fn read_response<T: Request>(
        &mut self,
        version: i16,
        expected: CorrelationId,
    ) -> Result<T::Response, ClientError> {
        let api = ApiKey::from_key(T::KEY).expect("checked when the request was encoded");
        let body = self.read_frame(api, version)?;
        let protocol = |reason: String| ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        };
        let (correlation_id, rest) = messages::parse_response_header(api, version, &body)
            .map_err(|e| protocol(e.to_string()))?;
        if correlation_id != expected {
            return Err(protocol(format!(
                "correlation id {} answers request {}",
                correlation_id.0, expected.0
            )));
        }
        decode_body::<T::Response>(api, version, rest).map_err(|e| protocol(e.to_string()))
    }

    fn read_frame(&mut self, api: ApiKey, version: i16) -> Result<Vec<u8>, ClientError> {
        let mut prefix = [0u8; frame::SIZE_PREFIX_BYTES];
        if let Err(e) = self.stream.read_exact(&mut prefix) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ClientError::Closed {
                    addr: self.addr.clone(),
                    api,
                    version,
                }
            } else {
                self.io_error(e)
            });
        }
        let size = match frame::check(&prefix, RESPONSE_BYTES_MAX) {
            Ok(_) => i32::from_be_bytes(prefix) as usize,
            Err(e) => {
                return Err(ClientError::Protocol {
                    addr: self.addr.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let mut body = vec![0u8; size];
        let result = self.stream.read_exact(&mut body);
        result.map_err(|e| self.io_error(e))?;
        Ok(body)
    }

    /// Metadata for `topics` (all topics for `None`).
    pub fn metadata(
        &mut self,
        topics: Option<&[&str]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, ClientError> {
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string((*n).to_owned()))))
                })
                .collect()
        });
        let version = self.version::<MetadataRequest>()?;
        let mut request = MetadataRequest::default().with_topics(topics);
        if version >= 4 {
            request.allow_auto_topic_creation = allow_auto_topic_creation;
        }
        self.roundtrip(version, &request)
    }
}

fn decode_body<R: Decodable + Message>(
    api: ApiKey,
    version: i16,
    body: &[u8],
) -> Result<R, MessageError> {
    messages::decode_response(api, version, body)
}

/// One topic as Metadata describes it, reduced to what the tools use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: [u8; 16],
    pub is_internal: bool,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub index: i32,
    pub error_code: i16,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A broker's advertised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The topics of a Metadata response, each with its error code.
pub fn topics_of(response: &MetadataResponse) -> Vec<(i16, TopicInfo)> {
    response
        .topics
        .iter()
        .map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    index: p.partition_index,
                    error_code: p.error_code,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.index);
            let info = TopicInfo {
                name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                id: *t.topic_id.as_bytes(),
                is_internal: t.is_internal,
                partitions,
            };
            (t.error_code, info)
        })
        .collect()
}

/// The brokers of a Metadata response.
pub fn brokers_of(response: &MetadataResponse) -> Vec<BrokerInfo> {
    response
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            node_id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
        })
        .collect()
}

/// Kafka prints topic ids in URL-safe base64 without padding
/// (`Uuid.toString`), e.g. `vJRbCdDDTVyPfydtZCOxbw`.
pub fn topic_id_string(id: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in id.chunks(3) {
        let mut b = [0u8; 3];
        b[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Connections to partition leaders, for tools that talk to them
/// (producer, consumer): one per broker, opened on first use. A
/// single-node cluster ends up with one connection.
pub struct Leaders {
    servers: String,
    client_id: String,
    bootstrap: Option<Client>,
    brokers: HashMap<i32, String>,
    connections: HashMap<i32, Client>,
}

impl Leaders {
    /// Connects to the `--bootstrap-server` list.
    pub fn connect(servers: &str, client_id: &str) -> Result<Leaders, ClientError> {
        let bootstrap = Client::bootstrap(servers, client_id)?;
        Ok(Leaders {
            servers: servers.to_owned(),
            client_id: client_id.to_owned(),
            bootstrap: Some(bootstrap),
            brokers: HashMap::new(),
            connections: HashMap::new(),
        })
    }

    /// Replaces the broker addresses after a metadata refresh.
    pub fn set_brokers(&mut self, brokers: &[BrokerInfo]) {
        self.brokers = brokers.iter().map(|b| (b.node_id, b.addr())).collect();
    }

    /// The bootstrap connection, for metadata and other cluster-wide
    /// requests; reconnects if it was lost.
    pub fn any(&mut self) -> Result<&mut Client, ClientError> {
        if self.bootstrap.is_none() {
            self.bootstrap = Some(Client::bootstrap(&self.servers, &self.client_id)?);
        }
        Ok(self.bootstrap.as_mut().expect("set above"))
    }

    /// The connection to broker `node_id`, opened on first use. The
    /// bootstrap connection is reused when it goes to the same address.
    pub fn node(&mut self, node_id: i32) -> Result<&mut Client, ClientError> {
        let addr = self.brokers.get(&node_id).cloned().ok_or_else(|| {
            ClientError::Other(format!("broker {node_id} is not in the metadata"))
        })?;
        if self.bootstrap.as_ref().is_some_and(|b| b.addr == addr) {
            return Ok(self.bootstrap.as_mut().expect("checked"));
        }
        if !self.connections.contains_key(&node_id) {
            let c = Client::connect(&addr, &self.client_id)?;
            self.connections.insert(node_id, c);
        }
        Ok(self.connections.get_mut(&node_id).expect("inserted above"))
    }

    /// Drops the connection to `node_id` after an I/O error, so the next
    /// use reconnects.
    pub fn forget(&mut self, node_id: i32) {
        self.connections.remove(&node_id);
        if let Some(addr) = self.brokers.get(&node_id) {
            if self.bootstrap.as_ref().is_some_and(|b| &b.addr == addr) {
                self.bootstrap = None;
            }
        }
    }

    /// A topic's partitions, once it exists and every partition has a
    /// leader; `None` while it does not (unknown topic, leader election
    /// under way), which callers retry. Updates the broker addresses.
    pub fn topic_partitions(
        &mut self,
        topic: &str,
        allow_auto_topic_creation: bool,
    ) -> Result<Option<Vec<PartitionInfo>>, ClientError> {
        let response = self
            .any()?
            .metadata(Some(&[topic]), allow_auto_topic_creation)?;
        self.set_brokers(&brokers_of(&response));
        let Some((code, info)) = topics_of(&response).into_iter().next() else {
            return Ok(None);
        };
        if let Some(e) = ClientError::from_code(code, None) {
            return if is_retriable(code) { Ok(None) } else { Err(e) };
        }
        let ready = !info.partitions.is_empty() && info.partitions.iter().all(|p| p.leader >= 0);
        Ok(ready.then_some(info.partitions))
    }

    /// Drops the bootstrap connection after an I/O error.
    pub fn forget_bootstrap(&mut self) {
        self.bootstrap = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_print_like_kafka() {
        // Kafka: Uuid.fromString("vJRbCdDDTVyPfydtZCOxbw") round-trips.
        let id = [
            0xbc, 0x94, 0x5b, 0x09, 0xd0, 0xc3, 0x4d, 0x5c, 0x8f, 0x7f, 0x27, 0x6d, 0x64, 0x23,
            0xb1, 0x6f,
        ];
        assert_eq!(topic_id_string(&id), "vJRbCdDDTVyPfydtZCOxbw");
        assert_eq!(topic_id_string(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn bootstrap_lists_are_checked() {
        assert_eq!(
            parse_bootstrap("a:1, b:2").expect("valid"),
            vec!["a:1".to_owned(), "b:2".to_owned()]
        );
        assert!(parse_bootstrap("").is_err());
        assert!(parse_bootstrap("localhost").is_err());
        assert!(parse_bootstrap("localhost:x").is_err());
    }

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
        let e = ClientError::from_code(
            36,
            Some(&StrBytes::from_static_str("Topic 't' already exists.")),
        )
        .expect("an error");
        assert_eq!(
            e.to_string(),
            "TOPIC_ALREADY_EXISTS: Topic 't' already exists."
        );
        assert!(ClientError::from_code(0, None).is_none());
    }
}

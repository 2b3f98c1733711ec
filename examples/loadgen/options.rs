//! Command-line options of the load generator.

use std::time::Duration;

pub(crate) const USAGE: &str = "usage: loadgen SCENARIO [options]
scenarios:
  fanout        S subscribers on one topic, P publishers, M messages each
  partitioned   T topics, one publisher and one subscriber each, M messages each
  quiet         T topics, S subscribers spread over them, one publisher each at --rate
                (many quiet connections: 10,000 subscribers, 100 topics, 10 messages/s)
  connections   C idle connections with one subscription each
  queue         P producers, C competing consumers of one queue (ack:client-individual,
                an ACK per message), M messages per producer
options:
  --url URL             server endpoint (default ws://127.0.0.1:61614/ws); repeat it to spread
                        the subscribers over several nodes, round robin (publishers use the
                        first)
  --subscribers S       fanout subscribers (default 100)
  --publishers P        fanout publishers (default 1)
  --topics T            partitioned topics (default 10)
  --messages M          messages per publisher (default 10000)
  --size B              message size in bytes, at least 48 (default 100)
  --rate R              messages per second per publisher; omit for full speed
  --receipt-every K     ask for a RECEIPT every K messages (default 100)
  --connections C       connections scenario size (default 1000)
  --consumers C         queue consumers (default 4)
  --prefetch N          queue consumers' prefetch-count (default 100)
  --queue DEST          the queue scenario's destination (default /queue/loadgen)
  --server-pid PID      read the server's CPU time (its CPU-time clock, in nanoseconds) and
                        memory (/proc); repeat it for a system of several processes (relaying
                        nodes and their broker): CPU per delivery is then their sum, with
                        each one's share in the JSON
  --destination-prefix  topic prefix (default /topic/loadgen; RabbitMQ wants /topic/ too)
  --label NAME          name of the server in the report (default server)
  --login USER          CONNECT login (RabbitMQ: guest)
  --passcode PASS       CONNECT passcode (RabbitMQ: guest)
  --host VHOST          CONNECT host header (default localhost; RabbitMQ wants /)
  --idle-timeout SECS   a subscriber that receives nothing for this long once the publishers
                        have started counts the rest as lost (default 10)";

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    Fanout,
    Partitioned,
    Quiet,
    Connections,
    Queue,
}

/// Parsed options.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) scenario: Scenario,
    pub(crate) url: String,
    /// Every `--url`, the first being `url`.
    pub(crate) urls: Vec<String>,
    pub(crate) subscribers: usize,
    pub(crate) publishers: usize,
    pub(crate) topics: usize,
    pub(crate) messages: u64,
    pub(crate) size: usize,
    pub(crate) rate: Option<f64>,
    pub(crate) receipt_every: u64,
    pub(crate) connections: usize,
    pub(crate) consumers: usize,
    pub(crate) prefetch: u64,
    pub(crate) queue: String,
    pub(crate) server_pid: Option<u32>,
    /// Every `--server-pid`, the first being `server_pid`.
    pub(crate) server_pids: Vec<u32>,
    pub(crate) prefix: String,
    pub(crate) label: String,
    pub(crate) login: Option<String>,
    pub(crate) passcode: Option<String>,
    pub(crate) host: String,
    pub(crate) idle_timeout: Duration,
}

impl Options {
    pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let scenario = match args.next().as_deref() {
            Some("fanout") => Scenario::Fanout,
            Some("partitioned") => Scenario::Partitioned,
            Some("quiet") => Scenario::Quiet,
            Some("connections") => Scenario::Connections,
            Some("queue") => Scenario::Queue,
            Some(other) => return Err(format!("unknown scenario {other:?}")),
            None => return Err("missing scenario".into()),
        };
        let mut o = Options {
            scenario,
            url: "ws://127.0.0.1:61614/ws".into(),
            urls: Vec::new(),
            subscribers: 100,
            publishers: 1,
            topics: 10,
            messages: 10_000,
            size: 100,
            rate: None,
            receipt_every: 100,
            connections: 1000,
            consumers: 4,
            prefetch: 100,
            queue: "/queue/loadgen".into(),
            server_pid: None,
            server_pids: Vec::new(),
            prefix: "/topic/loadgen".into(),
            label: "server".into(),
            login: None,
            passcode: None,
            host: "localhost".into(),
            idle_timeout: Duration::from_secs(10),
        };
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = |v: &str| {
                v.parse::<u64>().map_err(|_| format!("{flag} takes a whole number, not {v:?}"))
            };
            match flag.as_str() {
                "--url" => o.urls.push(value),
                "--subscribers" => o.subscribers = number(&value)? as usize,
                "--publishers" => o.publishers = number(&value)? as usize,
                "--topics" => o.topics = number(&value)? as usize,
                "--messages" => o.messages = number(&value)?,
                "--size" => o.size = number(&value)? as usize,
                "--rate" => o.rate = Some(number(&value)? as f64),
                "--receipt-every" => o.receipt_every = number(&value)?.max(1),
                "--connections" => o.connections = number(&value)? as usize,
                "--consumers" => o.consumers = number(&value)?.max(1) as usize,
                "--prefetch" => o.prefetch = number(&value)?,
                "--queue" => o.queue = value,
                "--server-pid" => o.server_pids.push(number(&value)? as u32),
                "--destination-prefix" => o.prefix = value,
                "--label" => o.label = value,
                "--login" => o.login = Some(value),
                "--passcode" => o.passcode = Some(value),
                "--host" => o.host = value,
                "--idle-timeout" => o.idle_timeout = Duration::from_secs(number(&value)?),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        match o.urls.first() {
            Some(first) => o.url = first.clone(),
            None => o.urls.push(o.url.clone()),
        }
        o.server_pid = o.server_pids.first().copied();
        if o.size < 48 {
            return Err(
                "--size must be at least 48 bytes (publisher, sequence and timestamp)".into()
            );
        }
        if o.subscribers == 0 || o.publishers == 0 || o.topics == 0 || o.messages == 0 {
            return Err(
                "--subscribers, --publishers, --topics and --messages must be positive".into()
            );
        }
        Ok(o)
    }

    /// The pause between two messages of one publisher in fixed-rate mode.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r))
    }
}

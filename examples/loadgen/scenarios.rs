//! The scenarios: traffic (fan-out and partitioned) and idle connections.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use stompede::client::{Client, ClientError, ClientOptions, Subscription};
use tokio::task::JoinSet;

use crate::options::{Options, Scenario};
use crate::proc_stat;

/// What a run found.
pub(crate) struct Report {
    pub(crate) human: String,
    pub(crate) json: serde_json::Value,
    /// No message lost, duplicated or reordered.
    pub(crate) clean: bool,
}

pub(crate) async fn run(o: &Options) -> Result<Report, ClientError> {
    match o.scenario {
        Scenario::Fanout => {
            traffic(
                o,
                vec![Topic {
                    destination: format!("{}.fanout", o.prefix),
                    publishers: o.publishers,
                    subscribers: o.subscribers,
                }],
            )
            .await
        }
        Scenario::Partitioned => {
            let topics = (0..o.topics)
                .map(|t| Topic {
                    destination: format!("{}.part{t}", o.prefix),
                    publishers: 1,
                    subscribers: 1,
                })
                .collect();
            traffic(o, topics).await
        }
        Scenario::Quiet => {
            let per_topic = o.subscribers.div_ceil(o.topics);
            let topics = (0..o.topics)
                .map(|t| Topic {
                    destination: format!("{}.quiet{t}", o.prefix),
                    publishers: 1,
                    subscribers: per_topic.min(o.subscribers - (t * per_topic).min(o.subscribers)),
                })
                .collect();
            traffic(o, topics).await
        }
        Scenario::Connections => connections(o).await,
        Scenario::Queue => crate::queue::run(o).await,
    }
}

struct Topic {
    destination: String,
    publishers: usize,
    subscribers: usize,
}

/// Connects to the `n`th of the `--url`s (round robin).
pub(crate) async fn connect_to(o: &Options, n: usize) -> Result<Client, ClientError> {
    let url = &o.urls[n % o.urls.len()];
    let options = ClientOptions {
        timeout: Duration::from_secs(30),
        login: o.login.clone(),
        passcode: o.passcode.clone(),
        host: o.host.clone(),
        ..ClientOptions::default()
    };
    Client::connect_ws(url, options).await
}

/// CPU seconds of every `--server-pid`, in order (`None` if one cannot be read).
pub(crate) fn servers_cpu(o: &Options) -> Option<Vec<f64>> {
    o.server_pids.iter().map(|&pid| proc_stat::cpu_seconds(pid)).collect()
}

pub(crate) async fn connect(o: &Options) -> Result<Client, ClientError> {
    let options = ClientOptions {
        timeout: Duration::from_secs(30),
        login: o.login.clone(),
        passcode: o.passcode.clone(),
        host: o.host.clone(),
        ..ClientOptions::default()
    };
    Client::connect_ws(&o.url, options).await
}

/// What one subscriber saw.
struct Seen {
    latency_us: Histogram<u64>,
    unique: u64,
    duplicated: u64,
    out_of_order: u64,
    expected: u64,
    /// When the last message arrived, in µs since the run's origin.
    last_us: u64,
    /// The connection and its subscription, left open: the run disconnects every session
    /// once all have seen their messages, apart from the deliveries it measures.
    session: Option<(Client, Subscription)>,
}

async fn traffic(o: &Options, topics: Vec<Topic>) -> Result<Report, ClientError> {
    let origin = Instant::now();
    let total_publishers: usize = topics.iter().map(|t| t.publishers).sum();
    let total_subscribers: usize = topics.iter().map(|t| t.subscribers).sum();

    // Subscribers first, each subscription confirmed by a receipt, so nothing is missed.
    // Their idle timers start when the publishers do: setting up 10,000 connections one after
    // another can take longer than the idle timeout, and the first subscribers, waiting from
    // their own subscription, were counted as having lost every message.
    let mut subscriber_tasks = JoinSet::new();
    let (go, publishing) = tokio::sync::watch::channel(false);
    let mut first_publisher = 0usize;
    let mut publishers = Vec::new();
    let mut subscriber_number = 0usize;
    for topic in &topics {
        for _ in 0..topic.subscribers {
            let client = connect_to(o, subscriber_number).await?;
            subscriber_number += 1;
            let subscription = client.subscribe(&topic.destination).await?;
            let expected_publishers = first_publisher..first_publisher + topic.publishers;
            let messages = o.messages;
            subscriber_tasks.spawn(subscriber(
                client,
                subscription,
                publishing.clone(),
                expected_publishers,
                messages,
                origin,
                o.idle_timeout,
            ));
        }
        for p in 0..topic.publishers {
            publishers.push((first_publisher + p, topic.destination.clone(), connect(o).await?));
        }
        first_publisher += topic.publishers;
    }

    let cpu_before = servers_cpu(o);
    let own_cpu_before = proc_stat::cpu_seconds(std::process::id());
    let started = Instant::now();
    let _ = go.send(true);
    let mut publisher_tasks = JoinSet::new();
    for (id, destination, client) in publishers {
        publisher_tasks.spawn(publisher(client, id, destination, o.clone(), origin));
    }
    // Every session stays open until all have seen their messages: closing 10,000 sessions
    // is work of its own (a DISCONNECT, its receipt, the WebSocket's closing handshake), and
    // counted inside the deliveries' window it was a twentieth of a session per delivery in
    // the quiet scenario, and slowed the last deliveries. It is measured after them, apart.
    let mut sessions: Vec<Client> = Vec::with_capacity(total_publishers + total_subscribers);
    let mut subscriptions: Vec<Subscription> = Vec::with_capacity(total_subscribers);
    while let Some(result) = publisher_tasks.join_next().await {
        sessions.push(
            result
                .map_err(|e| ClientError::Connection(format!("publisher task failed: {e}")))??,
        );
    }
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let (mut deliveries, mut expected, mut duplicated, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
    let mut last_us = started.duration_since(origin).as_micros() as u64;
    while let Some(result) = subscriber_tasks.join_next().await {
        let mut seen =
            result.map_err(|e| ClientError::Connection(format!("subscriber task failed: {e}")))?;
        if let Some((client, subscription)) = seen.session.take() {
            sessions.push(client);
            subscriptions.push(subscription);
        }
        latency.add(&seen.latency_us).expect("same histogram bounds");
        deliveries += seen.unique;
        expected += seen.expected;
        duplicated += seen.duplicated;
        out_of_order += seen.out_of_order;
        last_us = last_us.max(seen.last_us);
    }
    let cpu_after = servers_cpu(o);
    let own_cpu_after = proc_stat::cpu_seconds(std::process::id());
    // Then every session ends at once, as a test's or a deployment's clients would.
    let ended_sessions = sessions.len();
    let mut endings = JoinSet::new();
    for client in sessions {
        endings.spawn(client.disconnect());
    }
    while endings.join_next().await.is_some() {}
    drop(subscriptions);
    let cpu_ended = servers_cpu(o);
    let started_us = started.duration_since(origin).as_micros() as u64;
    let seconds = (last_us.saturating_sub(started_us) as f64 / 1e6).max(1e-9);
    let lost = expected - deliveries;
    // Per process, then the sum: the system's CPU per delivery.
    let cpu_by_pid: Option<Vec<f64>> = match (&cpu_before, &cpu_after) {
        (Some(a), Some(b)) if deliveries > 0 && !a.is_empty() => {
            Some(a.iter().zip(b).map(|(a, b)| (b - a) * 1e6 / deliveries as f64).collect())
        }
        _ => None,
    };
    let cpu_us = cpu_by_pid.as_ref().map(|each| each.iter().sum::<f64>());
    // The servers' CPU for the sessions' ends, per session.
    let end_us = match (&cpu_after, &cpu_ended) {
        (Some(a), Some(b)) if ended_sessions > 0 => {
            Some(a.iter().zip(b).map(|(a, b)| (b - a) * 1e6).sum::<f64>() / ended_sessions as f64)
        }
        _ => None,
    };
    let rate = deliveries as f64 / seconds;
    // The generator's own CPU share over the run: near 1.0 core means it is the bottleneck.
    let own_cores = match (own_cpu_before, own_cpu_after) {
        (Some(a), Some(b)) => Some((b - a) / seconds),
        _ => None,
    };
    let q = |p: f64| latency.value_at_quantile(p);
    let scenario = match o.scenario {
        Scenario::Fanout => "fanout",
        Scenario::Quiet => "quiet",
        _ => "partitioned",
    };
    let human = format!(
        "{scenario} against {label} ({url}): {subs} subscriber(s), {pubs} publisher(s), {topics} topic(s), {m} messages of {size} B per publisher{rate_mode}\n\
         deliveries: {deliveries} in {seconds:.3} s = {rate:.0}/s\n\
         latency µs: p50 {p50}  p99 {p99}  p99.9 {p999}  max {max}\n\
         lost {lost}, duplicated {duplicated}, out of order {out_of_order}{cpu}{end}{own}",
        label = o.label,
        url = o.url,
        subs = total_subscribers,
        pubs = total_publishers,
        topics = topics.len(),
        m = o.messages,
        size = o.size,
        rate_mode = o.rate.map(|r| format!(", at {r}/s each")).unwrap_or_default(),
        p50 = q(0.5),
        p99 = q(0.99),
        p999 = q(0.999),
        max = latency.max(),
        cpu = cpu_us.map(|c| format!("\nserver CPU per delivery: {c:.2} µs")).unwrap_or_default(),
        end = end_us
            .map(|c| format!("\nserver CPU per session ended (after the deliveries): {c:.1} µs"))
            .unwrap_or_default(),
        own = own_cores.map(|c| format!("\nload generator CPU: {c:.2} cores")).unwrap_or_default(),
    );
    let json = json!({
        "scenario": scenario, "label": o.label, "url": o.url,
        "subscribers": total_subscribers, "publishers": total_publishers, "topics": topics.len(),
        "messages": o.messages, "size": o.size, "rate": o.rate, "receipt_every": o.receipt_every,
        "deliveries": deliveries, "seconds": seconds, "deliveries_per_sec": rate,
        "latency_us": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": latency.max() },
        "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
        "server_cpu_us_per_delivery": cpu_us, "loadgen_cores": own_cores,
        "server_cpu_us_per_session_end": end_us,
        "server_pids": o.server_pids, "server_cpu_us_per_delivery_by_pid": cpu_by_pid,
        "urls": o.urls,
    });
    Ok(Report { human, json, clean: lost == 0 && duplicated == 0 && out_of_order == 0 })
}

/// The body: publisher, sequence and send time (µs since the run began), padded to size.
pub(crate) fn body(publisher: usize, seq: u64, sent_us: u64, size: usize) -> String {
    let mut body = format!("{publisher:08}:{seq:016}:{sent_us:020}:");
    body.extend(std::iter::repeat_n('x', size.saturating_sub(body.len())));
    body
}

pub(crate) fn parse(body: &[u8]) -> Option<(usize, u64, u64)> {
    let text = std::str::from_utf8(body.get(..47)?).ok()?;
    let mut fields = text.split(':');
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

pub(crate) async fn publisher(
    client: Client,
    id: usize,
    destination: String,
    o: Options,
    origin: Instant,
) -> Result<Client, ClientError> {
    let interval = o.interval();
    let start = tokio::time::Instant::now();
    // Fixed-rate publishers are spread over the interval, not all in step: the load is a
    // steady rate, not one burst per interval.
    let phase = id as f64 / o.publishers.max(o.topics).max(1) as f64;
    for seq in 0..o.messages {
        if let Some(interval) = interval {
            tokio::time::sleep_until(start + interval.mul_f64(seq as f64 + phase)).await;
        }
        let sent_us = origin.elapsed().as_micros() as u64;
        let body = body(id, seq, sent_us, o.size);
        if (seq + 1) % o.receipt_every == 0 || seq + 1 == o.messages {
            client.send_with_receipt(&destination, body).await?;
        } else {
            client.send(&destination, body).await?;
        }
    }
    Ok(client)
}

async fn subscriber(
    client: Client,
    mut subscription: Subscription,
    mut publishing: tokio::sync::watch::Receiver<bool>,
    publishers: std::ops::Range<usize>,
    messages: u64,
    origin: Instant,
    idle: Duration,
) -> Seen {
    let expected = (publishers.len() as u64) * messages;
    let mut seen_bits: Vec<Vec<u64>> =
        publishers.clone().map(|_| vec![0u64; messages.div_ceil(64) as usize]).collect();
    let mut highest: Vec<Option<u64>> = vec![None; publishers.len()];
    let mut stats = Seen {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
        unique: 0,
        duplicated: 0,
        out_of_order: 0,
        expected,
        last_us: 0,
        session: None,
    };
    // Nothing can arrive before the publishers start (messages that do wait in the
    // subscription's buffer); a setup that fails ends the run with an error instead.
    let _ = publishing.wait_for(|started| *started).await;
    while stats.unique < expected {
        // Arm the idle timer (a clock read) only when nothing is waiting already.
        let message = match subscription.try_next() {
            Some(message) => message,
            None => match tokio::time::timeout(idle, subscription.next()).await {
                Ok(Some(message)) => message,
                _ => break,
            },
        };
        // One clock read per message (it shows in profiles): the last arrival is derived.
        let now_us = origin.elapsed().as_micros() as u64;
        stats.last_us = now_us;
        let Some((publisher, seq, sent_us)) = parse(&message.body) else { continue };
        if !publishers.contains(&publisher) || seq >= messages {
            continue;
        }
        let p = publisher - publishers.start;
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if seen_bits[p][word] & bit != 0 {
            stats.duplicated += 1;
            continue;
        }
        seen_bits[p][word] |= bit;
        stats.unique += 1;
        if highest[p].is_some_and(|h| seq < h) {
            stats.out_of_order += 1;
        }
        highest[p] = highest[p].max(Some(seq));
        let _ = stats.latency_us.record(now_us.saturating_sub(sent_us).max(1));
    }
    stats.session = Some((client, subscription));
    stats
}

async fn connections(o: &Options) -> Result<Report, ClientError> {
    let rss_before = o.server_pid.and_then(proc_stat::rss_kib);
    let started = Instant::now();
    let mut kept = Vec::with_capacity(o.connections);
    let mut opened = 0usize;
    while opened < o.connections {
        let batch = (o.connections - opened).min(500);
        let results = open_idle_connections(o, opened, batch).await;
        for result in results {
            kept.push(result?);
        }
        opened += batch;
    }
    let open_seconds = started.elapsed().as_secs_f64();
    // Let the server settle (allocator, lazy buffers) before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = o.server_pid.and_then(proc_stat::rss_kib);
    let per_connection = match (rss_before, rss_after) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / o.connections as f64),
        _ => None,
    };
    let human = format!(
        "connections against {} ({}): {} connections, each with one subscription, opened in {:.3} s{}",
        o.label,
        o.url,
        o.connections,
        open_seconds,
        per_connection
            .map(|k| format!("\nserver resident memory per connection: {k:.1} KiB"))
            .unwrap_or_default()
    );
    let json = json!({
        "scenario": "connections", "label": o.label, "url": o.url, "connections": o.connections,
        "open_seconds": open_seconds, "rss_kib_per_connection": per_connection,
    });
    drop(kept);
    Ok(Report { human, json, clean: true })
}

/// Opens `count` connections numbered from `first`, each subscribed (with a receipt) to one of
/// 1,000 idle destinations, all at once.
async fn open_idle_connections(
    o: &Options,
    first: usize,
    count: usize,
) -> Vec<Result<(Client, Subscription), ClientError>> {
    let mut set = JoinSet::new();
    for i in first..first + count {
        let o = o.clone();
        set.spawn(async move {
            let client = connect(&o).await?;
            let subscription = client.subscribe(&format!("{}.idle{}", o.prefix, i % 1000)).await?;
            Ok((client, subscription))
        });
    }
    let mut out = Vec::with_capacity(count);
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap_or_else(|e| Err(ClientError::Connection(format!("task failed: {e}")))));
    }
    out
}

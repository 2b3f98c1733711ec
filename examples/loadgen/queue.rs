//! The queue scenario: P producers send to one queue, C competing consumers take its messages
//! with `ack:client-individual` and a prefetch, and ACK each one. Every message must be
//! delivered to exactly one consumer; what each consumer gets of one producer must be in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use stompede::client::{Client, ClientError, Subscription};
use stompede::stomp::{Command, Frame};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::options::Options;
use crate::scenarios::{Report, connect, connect_to, parse, publisher, servers_cpu};

/// What one consumer took.
struct Taken {
    latency_us: Histogram<u64>,
    /// Per producer, a bit per sequence number.
    seen: Vec<Vec<u64>>,
    out_of_order: u64,
    last_us: u64,
}

pub(crate) async fn run(o: &Options) -> Result<Report, ClientError> {
    let origin = Instant::now();
    let expected = o.publishers as u64 * o.messages;
    let received = Arc::new(AtomicU64::new(0));
    let (done_tx, done) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let prefetch = o.prefetch.to_string();
    let headers = [("ack", "client-individual"), ("prefetch-count", prefetch.as_str())];
    let mut consumers = JoinSet::new();
    for c in 0..o.consumers {
        let client = connect_to(o, c).await?;
        let subscription = client.subscribe_with(&o.queue, &headers).await?;
        let (received, done, done_tx) = (received.clone(), done.clone(), done_tx.clone());
        let (publishers, messages, idle) = (o.publishers, o.messages, o.idle_timeout);
        consumers.spawn(async move {
            let shared = Shared { received, expected, done, done_tx, origin, idle };
            consume(client, subscription, publishers, messages, shared).await
        });
    }
    let mut producers = Vec::new();
    for p in 0..o.publishers {
        producers.push((p, connect(o).await?));
    }
    let cpu_before = servers_cpu(o);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (id, client) in producers {
        let (queue, o) = (o.queue.clone(), o.clone());
        tasks.spawn(
            async move { publisher(client, id, queue, o, origin).await?.disconnect().await },
        );
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| ClientError::Connection(format!("producer task failed: {e}")))??;
    }
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let mut seen: Vec<Vec<u64>> =
        (0..o.publishers).map(|_| vec![0u64; o.messages.div_ceil(64) as usize]).collect();
    let (mut duplicated, mut out_of_order, mut last_us, mut per_consumer) =
        (0u64, 0u64, 0u64, vec![]);
    while let Some(result) = consumers.join_next().await {
        let taken =
            result.map_err(|e| ClientError::Connection(format!("consumer task failed: {e}")))?;
        latency.add(&taken.latency_us).expect("same histogram bounds");
        out_of_order += taken.out_of_order;
        last_us = last_us.max(taken.last_us);
        let mut count = 0u64;
        for (all, mine) in seen.iter_mut().zip(&taken.seen) {
            for (a, m) in all.iter_mut().zip(mine) {
                duplicated += u64::from((*a & m).count_ones());
                count += u64::from(m.count_ones());
                *a |= m;
            }
        }
        per_consumer.push(count);
    }
    let cpu_after = servers_cpu(o);
    let deliveries: u64 = seen.iter().flatten().map(|w| u64::from(w.count_ones())).sum();
    let started_us = started.duration_since(origin).as_micros() as u64;
    let seconds = (last_us.saturating_sub(started_us) as f64 / 1e6).max(1e-9);
    let lost = expected - deliveries;
    let cpu_us = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if deliveries > 0 => {
            Some(a.iter().zip(&b).map(|(a, b)| b - a).sum::<f64>() * 1e6 / deliveries as f64)
        }
        _ => None,
    };
    let rate = deliveries as f64 / seconds;
    let q = |p: f64| latency.value_at_quantile(p);
    let human = format!(
        "queue against {label} ({url}): {p} producer(s), {c} consumer(s) with client-individual acks and prefetch {prefetch}, {m} messages of {size} B per producer\n\
         deliveries: {deliveries} in {seconds:.3} s = {rate:.0}/s (per consumer: {per_consumer:?})\n\
         latency µs (send to receipt by a consumer): p50 {p50}  p99 {p99}  p99.9 {p999}  max {max}\n\
         lost {lost}, duplicated {duplicated}, out of order {out_of_order}{cpu}",
        label = o.label,
        url = o.url,
        p = o.publishers,
        c = o.consumers,
        prefetch = o.prefetch,
        m = o.messages,
        size = o.size,
        p50 = q(0.5),
        p99 = q(0.99),
        p999 = q(0.999),
        max = latency.max(),
        cpu = cpu_us.map(|c| format!("\nserver CPU per delivery: {c:.2} µs")).unwrap_or_default(),
    );
    let json = json!({
        "scenario": "queue", "label": o.label, "url": o.url,
        "publishers": o.publishers, "consumers": o.consumers, "prefetch": o.prefetch,
        "messages": o.messages, "size": o.size, "rate": o.rate,
        "deliveries": deliveries, "seconds": seconds, "deliveries_per_sec": rate,
        "per_consumer": per_consumer,
        "latency_us": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": latency.max() },
        "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
        "server_cpu_us_per_delivery": cpu_us, "server_pids": o.server_pids,
    });
    Ok(Report { human, json, clean: lost == 0 && duplicated == 0 && out_of_order == 0 })
}

/// What the consumers share: how many messages were taken in all, and the signal that all were.
struct Shared {
    received: Arc<AtomicU64>,
    expected: u64,
    done: watch::Receiver<bool>,
    done_tx: Arc<watch::Sender<bool>>,
    origin: Instant,
    idle: Duration,
}

async fn consume(
    client: Client,
    mut subscription: Subscription,
    publishers: usize,
    messages: u64,
    mut shared: Shared,
) -> Taken {
    let mut taken = Taken {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
        seen: (0..publishers).map(|_| vec![0u64; messages.div_ceil(64) as usize]).collect(),
        out_of_order: 0,
        last_us: 0,
    };
    let mut highest: Vec<Option<u64>> = vec![None; publishers];
    while !*shared.done.borrow() {
        let message = match subscription.try_next() {
            Some(message) => message,
            None => tokio::select! {
                next = tokio::time::timeout(shared.idle, subscription.next()) => match next {
                    Ok(Some(message)) => message,
                    _ => break,
                },
                _ = shared.done.changed() => break,
            },
        };
        let now_us = shared.origin.elapsed().as_micros() as u64;
        taken.last_us = now_us;
        if let Some(ack) = message.get("ack") {
            let ack = Frame::new(Command::Ack).header("id", ack.to_owned());
            if client.send_frame(ack).await.is_err() {
                break;
            }
        }
        let Some((producer, seq, sent_us)) = parse(&message.body) else { continue };
        if producer >= publishers || seq >= messages {
            continue;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        taken.seen[producer][word] |= bit;
        if highest[producer].is_some_and(|h| seq < h) {
            taken.out_of_order += 1;
        }
        highest[producer] = highest[producer].max(Some(seq));
        let _ = taken.latency_us.record(now_us.saturating_sub(sent_us).max(1));
        if shared.received.fetch_add(1, Ordering::AcqRel) + 1 >= shared.expected {
            let _ = shared.done_tx.send(true);
        }
    }
    let _ = client.disconnect().await;
    taken
}

//! The simple broker's publish path at scale: 100,000 subscriptions over 10,000 destinations,
//! with and without another thread subscribing and unsubscribing all the while.
//!
//! `cargo bench -p stompede --bench broker`; figures: docs/benchmarks.md.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stompede::Server;
use stompede::broker::Listener;
use stompede::stomp::Headers;

const DESTINATIONS: usize = 10_000;
const SUBSCRIPTIONS: usize = 100_000;

fn registry(c: &mut Criterion) {
    let server = Server::builder().build().expect("default configuration");
    let template = server.template();
    let destinations: Vec<String> = (0..DESTINATIONS).map(|i| format!("/topic/d{i}")).collect();
    let delivered = Arc::new(AtomicU64::new(0));
    let listeners: Vec<Listener> = (0..SUBSCRIPTIONS)
        .map(|i| {
            let delivered = delivered.clone();
            server
                .listen(&destinations[i % DESTINATIONS], move |_| {
                    delivered.fetch_add(1, Ordering::Relaxed);
                })
                .expect("broker destination")
        })
        .collect();
    assert_eq!(server.broker().subscription_count(), SUBSCRIPTIONS);
    let body = Bytes::from(vec![b'x'; 100]);
    let headers = Headers::new();

    let mut group = c.benchmark_group("broker");
    // Each publish reaches the 10 subscriptions of one destination.
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("publish_100k_subs_10k_destinations", |b| {
        b.iter(|| {
            i = (i + 1) % DESTINATIONS;
            black_box(template.send(&destinations[i], headers.clone(), body.clone()).expect("sent"))
        })
    });

    // The same, while another thread subscribes and unsubscribes as fast as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicU64::new(0));
    let churn = {
        let (server, stop, churned, destinations) =
            (server.clone(), stop.clone(), churned.clone(), destinations.clone());
        std::thread::spawn(move || {
            let mut j = 0usize;
            while !stop.load(Ordering::Relaxed) {
                j = (j + 7) % DESTINATIONS;
                let listener = server.listen(&destinations[j], |_| {}).expect("broker destination");
                drop(listener);
                churned.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    group.bench_function("publish_while_another_thread_churns_subscriptions", |b| {
        b.iter(|| {
            i = (i + 1) % DESTINATIONS;
            black_box(template.send(&destinations[i], headers.clone(), body.clone()).expect("sent"))
        })
    });
    stop.store(true, Ordering::Relaxed);
    churn.join().expect("churn thread");
    eprintln!("churn thread made {} subscribe+unsubscribe pairs", churned.load(Ordering::Relaxed));

    group.bench_function("subscribe_and_unsubscribe", |b| {
        b.iter(|| {
            i = (i + 1) % DESTINATIONS;
            drop(black_box(server.listen(&destinations[i], |_| {}).expect("broker destination")));
        })
    });

    // 100 wildcard subscriptions that never match: the price every publish pays for them.
    let patterns: Vec<Listener> = (0..100)
        .map(|k| server.listen(&format!("/topic/p{k}.*"), |_| {}).expect("broker destination"))
        .collect();
    group.bench_function("publish_with_100_pattern_subscriptions", |b| {
        b.iter(|| {
            i = (i + 1) % DESTINATIONS;
            black_box(template.send(&destinations[i], headers.clone(), body.clone()).expect("sent"))
        })
    });
    group.finish();
    drop(patterns);
    drop(listeners);
    assert!(delivered.load(Ordering::Relaxed) > 0);
}

criterion_group!(benches, registry);
criterion_main!(benches);

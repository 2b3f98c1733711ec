//! The subscription registry: which subscribers a destination's messages go to.
//!
//! Exact destinations live in a sharded map; each destination holds its own subscriber list
//! behind its own lock. Publishing takes a shard's read lock only long enough to clone the
//! destination's `Arc`, then reads that destination's list: publishers never wait for each
//! other, and subscribe/unsubscribe hold a write lock on one shard and one list for the time of
//! a `Vec` push or swap-remove. Wildcard subscriptions (few, in practice) sit in a separate
//! copy-on-write list that is consulted only when it is not empty: a publish takes a snapshot
//! of it (one `Arc` clone under a read lock) and matches without any lock held, so a publish
//! that matches slowly never holds up a subscribe, nor another publish behind a waiting
//! subscribe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::Pattern;
use super::subscriber::{Listed, Subscriber};
use crate::locks::{read, write};
use crate::stomp::ByteStr;

const SHARDS: usize = 64;

/// How many deliveries ahead a fan-out asks for a subscription's outbox...
const OUTBOX_AHEAD: usize = 8;
/// ...and for the queue slot and task it will write to (see `crate::prefetch`).
const SLOT_AHEAD: usize = 4;
/// A fan-out to fewer subscriptions than this does not prefetch (their outboxes stay in cache
/// between messages).
const PREFETCH_FROM: usize = 32;

/// A shard of exact destinations. Hashed with foldhash, keyed by a random seed per map (as
/// hashbrown's default hasher): a lookup per SEND costs a fraction of SipHash's on names of a
/// few dozen bytes, and clients still cannot choose names that collide.
type Shard = RwLock<HashMap<ByteStr, Arc<Topic>, foldhash::fast::RandomState>>;

/// The wildcard subscriptions: a snapshot publishers share, replaced (or changed in place
/// when no publisher holds it) by subscribe and unsubscribe.
type Patterns = RwLock<Arc<Vec<Arc<(Pattern, Listed)>>>>;

/// Subscribers by destination.
pub(crate) struct Registry {
    shards: Box<[Shard]>,
    patterns: Patterns,
    pattern_count: AtomicUsize,
    total: AtomicUsize,
}

#[derive(Default)]
pub(crate) struct Topic {
    subscribers: RwLock<Slots>,
}

/// A list for fast iteration, with positions for O(1) removal.
#[derive(Default)]
struct Slots {
    list: Vec<Listed>,
    position: HashMap<u64, usize>,
    /// Set, under this lock, as the topic leaves its shard (its last subscriber gone): a
    /// publisher that kept it (see [`KeptTopic`]) looks it up again.
    removed: bool,
}

/// A destination's subscriber list, kept by a publisher that sends to it again and again
/// (see `SendTemplate`): its publishes skip the shard's lock and map, until the list leaves
/// the registry (then they look the destination up again). Holds no lock, and no subscriber.
#[derive(Default)]
pub(crate) struct KeptTopic(std::cell::Cell<Option<Arc<Topic>>>);

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            patterns: RwLock::default(),
            pattern_count: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        }
    }
}

impl Registry {
    fn shard(&self, destination: &str) -> &Shard {
        &self.shards[super::shard_index(destination, SHARDS)]
    }

    /// Adds a subscriber; its destination may be a pattern.
    pub(crate) fn add(&self, subscriber: Arc<Subscriber>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if Pattern::is_pattern(&subscriber.destination) {
            let entry =
                Arc::new((Pattern::parse(&subscriber.destination), Listed::new(subscriber)));
            Arc::make_mut(&mut *write(&self.patterns)).push(entry);
            self.pattern_count.fetch_add(1, Ordering::Release);
            return;
        }
        let mut shard = write(self.shard(&subscriber.destination));
        let topic = shard.entry(subscriber.destination.clone()).or_default();
        let mut slots = write(&topic.subscribers);
        let index = slots.list.len();
        slots.position.insert(subscriber.uid, index);
        slots.list.push(Listed::new(subscriber));
    }

    /// Removes a subscriber added before; removing one twice does nothing.
    pub(crate) fn remove(&self, subscriber: &Subscriber) {
        if Pattern::is_pattern(&subscriber.destination) {
            let mut patterns = write(&self.patterns);
            if let Some(i) =
                patterns.iter().position(|entry| entry.1.subscriber.uid == subscriber.uid)
            {
                Arc::make_mut(&mut *patterns).swap_remove(i);
                self.pattern_count.fetch_sub(1, Ordering::Release);
                self.total.fetch_sub(1, Ordering::Relaxed);
            }
            return;
        }
        let mut shard = write(self.shard(&subscriber.destination));
        let Some(topic) = shard.get(subscriber.destination.as_str()) else { return };
        let mut slots = write(&topic.subscribers);
        let Some(index) = slots.position.remove(&subscriber.uid) else { return };
        slots.list.swap_remove(index);
        if let Some(moved) = slots.list.get(index) {
            let uid = moved.subscriber.uid;
            slots.position.insert(uid, index);
        }
        self.total.fetch_sub(1, Ordering::Relaxed);
        let empty = slots.list.is_empty();
        // Under both locks: no publish finds it in the shard after this, and one that kept it
        // sees the flag.
        slots.removed = empty;
        drop(slots);
        if empty {
            shard.remove(subscriber.destination.as_str());
        }
    }

    /// Calls `deliver` for every subscriber whose destination or pattern matches.
    pub(crate) fn for_each_match(&self, destination: &str, mut deliver: impl Visit) {
        let topic = read(self.shard(destination)).get(destination).cloned();
        if let Some(topic) = topic {
            deliver_all(&read(&topic.subscribers).list, &mut deliver);
        }
        self.for_each_pattern_match(destination, deliver);
    }

    /// [`for_each_match`](Self::for_each_match), with the destination's list `kept` from the
    /// last time (and kept for the next).
    pub(crate) fn for_each_match_kept(
        &self,
        destination: &str,
        kept: &KeptTopic,
        mut deliver: impl Visit,
    ) {
        if let Some(topic) = kept.0.take() {
            let slots = read(&topic.subscribers);
            if !slots.removed {
                deliver_all(&slots.list, &mut deliver);
                drop(slots);
                kept.0.set(Some(topic));
                return self.for_each_pattern_match(destination, deliver);
            }
        }
        let topic = read(self.shard(destination)).get(destination).cloned();
        if let Some(topic) = &topic {
            deliver_all(&read(&topic.subscribers).list, &mut deliver);
        }
        kept.0.set(topic);
        self.for_each_pattern_match(destination, deliver);
    }

    /// [`for_each_match`](Self::for_each_match)'s pattern subscriptions.
    fn for_each_pattern_match(&self, destination: &str, mut deliver: impl Visit) {
        if self.pattern_count.load(Ordering::Acquire) > 0 {
            let snapshot = read(&self.patterns).clone();
            for entry in snapshot.iter() {
                let (pattern, listed) = &**entry;
                if pattern.matches(destination) {
                    deliver.visit(listed);
                }
            }
        }
    }

    /// How many subscriptions are registered.
    pub(crate) fn len(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// How many distinct exact destinations have subscribers.
    pub(crate) fn destinations(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }
}

/// What [`Registry::for_each_match`] hands each matching subscription to: a closure, or a
/// fan-out whose `visit` is marked `#[inline(always)]`, so that its delivery is inlined into
/// the loops over the list (a closure called from the three loops stays a call: saving and
/// restoring its registers was a tenth of a delivery).
pub(crate) trait Visit {
    fn visit(&mut self, listed: &Listed);
}

impl<F: FnMut(&Listed)> Visit for F {
    #[inline(always)]
    fn visit(&mut self, listed: &Listed) {
        self(listed);
    }
}

/// Delivers to every subscription of `list` in order.
#[inline(always)]
fn deliver_all(list: &[Listed], deliver: &mut impl Visit) {
    if list.len() < PREFETCH_FROM {
        // A short list's outboxes are in cache already: prefetching is pure overhead.
        for listed in list {
            deliver.visit(listed);
        }
    } else {
        deliver_prefetching(list, deliver);
    }
}

/// Delivers to every subscription of `list` in order, with software pipelining (see
/// `crate::prefetch`): the outbox of the subscription OUTBOX_AHEAD places on, then the queue
/// slot of the one SLOT_AHEAD on, so that a delivery finds both in cache. The first ones are
/// asked for all at once (their misses overlap rather than follow each other).
fn deliver_prefetching(list: &[Listed], deliver: &mut impl Visit) {
    for ahead in list.iter().take(OUTBOX_AHEAD) {
        ahead.prefetch_outbox();
    }
    for ahead in list.iter().take(SLOT_AHEAD) {
        ahead.prefetch_slot();
    }
    for (i, listed) in list.iter().enumerate() {
        if let Some(ahead) = list.get(i + OUTBOX_AHEAD) {
            ahead.prefetch_outbox();
        }
        if let Some(ahead) = list.get(i + SLOT_AHEAD) {
            ahead.prefetch_slot();
        }
        deliver.visit(listed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::{KeptTopic, Registry};
    use crate::broker::subscriber::Listed;
    use crate::broker::subscriber::Subscriber;

    fn local(destination: &'static str) -> Arc<Subscriber> {
        Arc::new(Subscriber::local(destination.into(), Arc::new(|_| {})))
    }

    /// A publish busy matching wildcard subscriptions (here: stopped inside its delivery)
    /// holds no lock that subscribe, unsubscribe or other publishes wait for.
    #[test]
    fn a_slow_publish_blocks_no_subscribe_and_no_other_destination() {
        let registry = Arc::new(Registry::default());
        registry.add(local("/topic/**"));
        let (started, is_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let slow = {
            let registry = registry.clone();
            std::thread::spawn(move || {
                registry.for_each_match("/topic/slow", |_: &Listed| {
                    started.send(()).expect("the test waits");
                    released.recv().expect("the test releases");
                });
            })
        };
        is_started.recv_timeout(Duration::from_secs(10)).expect("the slow publish started");

        let (done, is_done) = mpsc::channel();
        let others = {
            let registry = registry.clone();
            std::thread::spawn(move || {
                let pattern = local("/topic/other.*");
                registry.add(pattern.clone());
                registry.add(local("/topic/plain"));
                let mut delivered = 0;
                registry.for_each_match("/topic/other.x", |_: &Listed| delivered += 1);
                registry.remove(&pattern);
                done.send(delivered).expect("the test waits");
            })
        };
        let delivered = is_done.recv_timeout(Duration::from_secs(10));
        release.send(()).expect("the slow publish waits");
        slow.join().expect("no panic");
        others.join().expect("no panic");
        // `/topic/**` and `/topic/other.*` both match `/topic/other.x`.
        assert_eq!(delivered, Ok(2), "subscribe and publish went ahead during the slow publish");
        assert_eq!(registry.len(), 2);
    }

    /// Short lists and long ones (which prefetch ahead) each deliver to every subscription
    /// once, in the order they were added, and then to the matching patterns.
    #[test]
    fn every_subscription_gets_each_publish_once_in_order() {
        for count in [1, super::SLOT_AHEAD, super::PREFETCH_FROM - 1, super::PREFETCH_FROM, 100] {
            let registry = Registry::default();
            let subscribers: Vec<_> = (0..count).map(|_| local("/topic/t")).collect();
            for subscriber in &subscribers {
                registry.add(subscriber.clone());
            }
            let pattern = local("/topic/*");
            registry.add(pattern.clone());
            let mut seen = Vec::new();
            registry.for_each_match("/topic/t", |listed: &Listed| seen.push(listed.subscriber.uid));
            let mut expected: Vec<_> = subscribers.iter().map(|s| s.uid).collect();
            expected.push(pattern.uid);
            assert_eq!(seen, expected, "{count} subscriptions");
        }
    }

    /// A publisher's kept list reaches who subscribes to it since, and no one who left; once
    /// the last subscriber has left, the list is looked up again, so a new subscriber (on a
    /// new list) gets the next publish; with no subscriber, nothing is kept.
    #[test]
    fn a_kept_list_is_looked_up_again_once_it_left_the_registry() {
        let registry = Registry::default();
        let kept = KeptTopic::default();
        let seen = |kept: &KeptTopic| {
            let mut seen = Vec::new();
            registry.for_each_match_kept("/topic/t", kept, |listed: &Listed| {
                seen.push(listed.subscriber.uid)
            });
            seen
        };
        assert!(seen(&kept).is_empty());
        let none = kept.0.take();
        assert!(none.is_none(), "nothing kept for a destination with no subscriber");
        let (first, second) = (local("/topic/t"), local("/topic/t"));
        registry.add(first.clone());
        assert_eq!(seen(&kept), [first.uid]);
        let list = kept.0.take().expect("kept");
        kept.0.set(Some(list.clone()));
        registry.add(second.clone());
        assert_eq!(seen(&kept), [first.uid, second.uid]);
        registry.remove(&first);
        assert_eq!(seen(&kept), [second.uid]);
        registry.remove(&second);
        let third = local("/topic/t");
        registry.add(third.clone());
        assert_eq!(seen(&kept), [third.uid], "the new list, not the one that left");
        let again = kept.0.take().expect("kept");
        assert!(!Arc::ptr_eq(&again, &list));
        kept.0.set(Some(again));
        // A pattern subscription is matched as ever.
        let pattern = local("/topic/*");
        registry.add(pattern.clone());
        assert_eq!(seen(&kept), [third.uid, pattern.uid]);
    }
}

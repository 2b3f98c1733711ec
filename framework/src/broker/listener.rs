//! In-process listeners: application code that receives what is published to a broker
//! destination, without a connection (to bridge a topic to server-sent events, keep an audit
//! log, feed a bot).

use std::sync::Arc;

use super::{Broker, Subscriber};

/// A registered in-process listener; dropping it unsubscribes. Made by
/// [`Server::listen`](crate::Server::listen).
#[must_use = "dropping the Listener unsubscribes it at once"]
pub struct Listener {
    broker: Arc<Broker>,
    subscriber: Arc<Subscriber>,
}

impl Listener {
    pub(crate) fn new(broker: Arc<Broker>, subscriber: Arc<Subscriber>) -> Self {
        broker.subscribe(subscriber.clone());
        Listener { broker, subscriber }
    }

    /// The destination or pattern listened to.
    pub fn destination(&self) -> &str {
        &self.subscriber.destination
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.broker.unsubscribe(&self.subscriber);
    }
}

//! Who is connected: every session with its principal, subscriptions and a handle to close
//! it (Spring's `SimpUserRegistry`), and the connection limits per server, per user and per
//! remote address that CONNECT is checked against.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::dispatch::Fatal;
use crate::locks::lock;
use crate::security::Principal;
use crate::stomp::ByteStr;

/// A connected user: its name and its sessions (one per browser tab, device...). Listed by
/// [`Server::users`](crate::Server::users).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// The principal's name.
    pub name: String,
    /// Its open sessions, in the order they connected.
    pub sessions: Vec<UserSession>,
}

/// One session of a [`User`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSession {
    /// The session id.
    pub id: String,
    /// Its subscriptions, in the order they were made.
    pub subscriptions: Vec<UserSubscription>,
}

/// One subscription of a [`UserSession`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSubscription {
    /// The client's id for it.
    pub id: String,
    /// The destination as the client subscribed to it (`/user/queue/reply`, `/topic/chat`).
    pub destination: String,
}

/// The connection limits CONNECT is checked against (`None`: no limit).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SessionLimits {
    pub(crate) total: Option<usize>,
    pub(crate) per_user: Option<usize>,
    pub(crate) per_address: Option<usize>,
}

struct Entry {
    principal: Option<Principal>,
    addr: Option<IpAddr>,
    /// Raised to close the session from outside (logout).
    closer: Arc<Fatal>,
    /// Its subscriptions: id and destination as the client wrote it.
    subscriptions: Vec<(ByteStr, ByteStr)>,
    /// Order of connection, for stable listings.
    seq: u64,
}

/// How long `disconnect_user` keeps refusing the user's connections opened before it: longer
/// than a connection may wait before CONNECT (`time_to_first_message`, 60 s by default) plus
/// an authentication.
const LOGOUT_MEMORY: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Default)]
struct Inner {
    /// Users closed by `disconnect_user`: when, and the reason given.
    logouts: HashMap<Arc<str>, (tokio::time::Instant, String)>,
    sessions: HashMap<ByteStr, Entry>,
    users: HashMap<Arc<str>, Vec<ByteStr>>,
    addresses: HashMap<IpAddr, usize>,
    seq: u64,
}

/// Every connected session of one server.
#[derive(Default)]
pub(crate) struct SessionRegistry {
    inner: Mutex<Inner>,
}

impl SessionRegistry {
    /// Registers a session that completed CONNECT, unless that would break a limit: then the
    /// error says which (the ERROR frame's message).
    pub(crate) fn register(
        &self,
        id: ByteStr,
        principal: Option<Principal>,
        addr: Option<IpAddr>,
        closer: Arc<Fatal>,
        limits: SessionLimits,
        accepted: tokio::time::Instant,
    ) -> Result<(), String> {
        let mut inner = lock(&self.inner);
        // A connection opened before its user was disconnected (logged out) but connecting
        // only now is refused like the sessions that were open.
        if let Some(user) = &principal {
            if let Some((when, reason)) = inner.logouts.get(user.name()) {
                if accepted <= *when {
                    return Err(reason.clone());
                }
            }
        }
        if let Some(max) = limits.total {
            if inner.sessions.len() >= max {
                return Err(format!(
                    "too many sessions: this server accepts at most {max} (max_sessions); try again later"
                ));
            }
        }
        if let (Some(max), Some(user)) = (limits.per_user, &principal) {
            let open = inner.users.get(user.name()).map_or(0, Vec::len);
            if open >= max {
                return Err(format!(
                    "too many sessions for user {user}: at most {max} at once (max_sessions_per_user); close another tab or device first"
                ));
            }
        }
        if let (Some(max), Some(ip)) = (limits.per_address, addr) {
            if inner.addresses.get(&ip).copied().unwrap_or(0) >= max {
                return Err(format!(
                    "too many sessions from {ip}: at most {max} at once (max_sessions_per_address)"
                ));
            }
        }
        if let Some(user) = &principal {
            inner.users.entry(Arc::from(user.name())).or_default().push(id.clone());
        }
        if let Some(ip) = addr {
            *inner.addresses.entry(ip).or_default() += 1;
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner
            .sessions
            .insert(id, Entry { principal, addr, closer, subscriptions: Vec::new(), seq });
        Ok(())
    }

    /// Forgets a session (it ended).
    pub(crate) fn unregister(&self, id: &str) {
        let mut inner = lock(&self.inner);
        let Some(entry) = inner.sessions.remove(id) else { return };
        if let Some(user) = &entry.principal {
            if let Some(sessions) = inner.users.get_mut(user.name()) {
                sessions.retain(|s| &**s != id);
                if sessions.is_empty() {
                    inner.users.remove(user.name());
                }
            }
        }
        if let Some(ip) = entry.addr {
            if let Some(count) = inner.addresses.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    inner.addresses.remove(&ip);
                }
            }
        }
    }

    /// Records a subscription of a user's session (for [`users`](Self::users)).
    pub(crate) fn subscribed(&self, id: &str, subscription: ByteStr, destination: ByteStr) {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.sessions.get_mut(id) {
            entry.subscriptions.push((subscription, destination));
        }
    }

    /// Forgets a subscription of a user's session.
    pub(crate) fn unsubscribed(&self, id: &str, subscription: &str) {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.sessions.get_mut(id) {
            entry.subscriptions.retain(|(s, _)| &**s != subscription);
        }
    }

    /// The sessions of `user`, in the order they connected.
    pub(crate) fn sessions_of(&self, user: &str) -> Vec<ByteStr> {
        lock(&self.inner).users.get(user).cloned().unwrap_or_default()
    }

    /// Closes every session of `user` with an ERROR frame saying `message`; returns how many.
    pub(crate) fn close_user(&self, user: &str, message: &str) -> usize {
        let mut inner = lock(&self.inner);
        let now = tokio::time::Instant::now();
        inner.logouts.retain(|_, (when, _)| now.saturating_duration_since(*when) < LOGOUT_MEMORY);
        inner.logouts.insert(Arc::from(user), (now, message.to_owned()));
        let Some(sessions) = inner.users.get(user) else { return 0 };
        for id in sessions {
            if let Some(entry) = inner.sessions.get(id) {
                entry.closer.raise(message.to_owned());
            }
        }
        sessions.len()
    }

    /// How many sessions are connected.
    pub(crate) fn session_count(&self) -> usize {
        lock(&self.inner).sessions.len()
    }

    /// The connected users, by name.
    pub(crate) fn users(&self) -> Vec<User> {
        let inner = lock(&self.inner);
        let mut users: Vec<User> = inner
            .users
            .iter()
            .map(|(name, ids)| {
                let mut sessions: Vec<(u64, UserSession)> = ids
                    .iter()
                    .filter_map(|id| inner.sessions.get(id).map(|entry| (id, entry)))
                    .map(|(id, entry)| {
                        let subscriptions = entry
                            .subscriptions
                            .iter()
                            .map(|(sub, destination)| UserSubscription {
                                id: sub.to_string(),
                                destination: destination.to_string(),
                            })
                            .collect();
                        (entry.seq, UserSession { id: id.to_string(), subscriptions })
                    })
                    .collect();
                sessions.sort_by_key(|(seq, _)| *seq);
                User {
                    name: name.to_string(),
                    sessions: sessions.into_iter().map(|(_, s)| s).collect(),
                }
            })
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }
}

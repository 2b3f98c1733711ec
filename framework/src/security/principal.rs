//! The authenticated user of a session.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// The authenticated user of a session (Spring's `Principal`): a name, roles, and whatever
/// string attributes the application needs (a tenant, a display name).
///
/// A session gets one from the [`HandshakeHook`](crate::HandshakeHook), from the host
/// application's own middleware when the server is mounted in axum (a `Principal` in the
/// request's extensions), or from the [`ConnectAuthenticator`](crate::ConnectAuthenticator)
/// at CONNECT. Handlers take it as an argument: `Principal` (a session without one gets an
/// ERROR frame) or `Option<Principal>`.
///
/// ```
/// use stompede::Principal;
/// let ada = Principal::new("ada").with_role("admin").with_attribute("tenant", "acme");
/// assert!(ada.has_role("admin"));
/// assert_eq!(ada.attribute("tenant"), Some("acme"));
/// assert_eq!(ada.to_string(), "ada");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    name: Arc<str>,
    roles: Arc<BTreeSet<String>>,
    attributes: Arc<BTreeMap<String, String>>,
}

impl Principal {
    /// A principal with this user name, no roles and no attributes.
    pub fn new(name: impl Into<String>) -> Self {
        Principal {
            name: Arc::from(name.into()),
            roles: Arc::default(),
            attributes: Arc::default(),
        }
    }

    /// The same principal with one more role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.roles).insert(role.into());
        self
    }

    /// The same principal with these roles added.
    pub fn with_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.roles).extend(roles.into_iter().map(Into::into));
        self
    }

    /// The same principal with the attribute `name` set to `value`.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.attributes).insert(name.into(), value.into());
        self
    }

    /// The user name: what user destinations (`/user/{name}/...`) and
    /// [`MessagingTemplate::convert_and_send_to_user`](crate::MessagingTemplate::convert_and_send_to_user)
    /// address.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// The roles, in order.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(String::as_str)
    }

    /// The value of an attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Attributes may hold what logs should not (tokens): their names only.
        f.debug_struct("Principal")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("attributes", &self.attributes.keys().collect::<Vec<_>>())
            .finish()
    }
}

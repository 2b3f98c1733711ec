//! The routing table of a server: handlers by destination pattern, checked at start-up.

use std::collections::HashMap;

use super::handler::{Handler, HandlerKind};
use crate::config::{Config, ConfigError, ConfigErrorKind};
use crate::destination::{self, Captures, DestinationPattern};

/// One mapping: a handler and one of its patterns.
pub(crate) struct Route {
    pub(crate) handler: &'static Handler,
    pub(crate) pattern: DestinationPattern,
}

/// Routes of one kind (message or subscribe mappings).
#[derive(Default)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
    /// Literal patterns, by destination.
    exact: HashMap<Box<str>, usize>,
    /// The other patterns, most specific first.
    patterns: Vec<usize>,
}

impl RouteTable {
    fn add(&mut self, route: Route) {
        let index = self.routes.len();
        if route.pattern.is_literal() {
            self.exact.insert(route.pattern.as_str().into(), index);
        } else {
            self.patterns.push(index);
        }
        self.routes.push(route);
    }

    fn sort(&mut self) {
        let routes = &self.routes;
        self.patterns.sort_by_key(|&i| routes[i].pattern.specificity());
    }

    /// The route for `lookup` (a destination without its application prefix) and what its
    /// pattern captured.
    pub(crate) fn find(&self, lookup: &str) -> Option<(&Route, Captures)> {
        if let Some(&index) = self.exact.get(lookup) {
            return Some((&self.routes[index], Vec::new()));
        }
        self.patterns.iter().find_map(|&index| {
            let route = &self.routes[index];
            route.pattern.matches(lookup).map(|captures| (route, captures))
        })
    }
}

/// The handler a destination is routed to, with what the match found.
pub(crate) struct Matched {
    pub(crate) handler: &'static Handler,
    /// The destination without its application prefix.
    pub(crate) lookup: Box<str>,
    /// What the pattern's placeholders captured.
    pub(crate) variables: Captures,
}

/// Every handler of a server, ready for lookup.
#[derive(Default)]
pub(crate) struct Router {
    pub(crate) messages: RouteTable,
    pub(crate) subscriptions: RouteTable,
    /// Exception handlers: those catching specific error types first, then the catch-all.
    pub(crate) exceptions: Vec<&'static Handler>,
}

impl Router {
    /// Builds the table, refusing patterns that do not parse, two handlers with an identical
    /// pattern, `send_to` destinations outside the broker prefixes, and two catch-all
    /// exception handlers.
    pub(crate) fn new(
        handlers: impl IntoIterator<Item = &'static Handler>,
        config: &Config,
    ) -> Result<Router, ConfigError> {
        let mut router = Router::default();
        let mut seen: Vec<&'static Handler> = Vec::new();
        let mut owners: HashMap<(HandlerKind, String), &'static str> = HashMap::new();
        for handler in handlers {
            // The same handler found by discovery and named explicitly counts once.
            if seen.iter().any(|h| std::ptr::eq(*h, handler)) {
                continue;
            }
            seen.push(handler);
            for destination in handler.send_to.iter().chain(handler.send_to_user) {
                let static_part = destination.split('{').next().unwrap_or_default();
                if config.broker_prefix_of(destination).is_none()
                    && config.broker_prefix_of(static_part.trim_end_matches('/')).is_none()
                {
                    return Err(ConfigError::new(ConfigErrorKind::SendToOutsideBroker {
                        handler: handler.name,
                        destination,
                        prefixes: config.broker_prefixes.join(", "),
                    }));
                }
            }
            if handler.kind == HandlerKind::Exception {
                router.exceptions.push(handler);
                continue;
            }
            let table = match handler.kind {
                HandlerKind::Subscribe => &mut router.subscriptions,
                _ => &mut router.messages,
            };
            for source in handler.patterns {
                let pattern = DestinationPattern::parse(source).map_err(|e| {
                    ConfigError::new(ConfigErrorKind::BadPattern {
                        handler: handler.name,
                        problem: e.to_string(),
                    })
                })?;
                for destination in handler.send_to.iter().chain(handler.send_to_user) {
                    for variable in
                        destination::template_placeholders(destination).map_err(|e| {
                            ConfigError::new(ConfigErrorKind::BadPattern {
                                handler: handler.name,
                                problem: e.to_string(),
                            })
                        })?
                    {
                        if !pattern.variables().any(|v| v == variable) {
                            return Err(ConfigError::new(ConfigErrorKind::UndefinedPlaceholder {
                                handler: handler.name,
                                destination,
                                pattern: source,
                                variable: variable.to_string(),
                            }));
                        }
                    }
                }
                if let Some(first) = owners.insert((handler.kind, source.to_string()), handler.name)
                {
                    return Err(ConfigError::new(ConfigErrorKind::DuplicateMapping {
                        first,
                        second: handler.name,
                        pattern: source,
                        attribute: handler.kind.attribute(),
                    }));
                }
                table.add(Route { handler, pattern });
            }
        }
        router.messages.sort();
        router.subscriptions.sort();
        router.exceptions.sort_by_key(|h| h.catches.is_none());
        let catch_alls: Vec<&str> =
            router.exceptions.iter().filter(|h| h.catches.is_none()).map(|h| h.name).collect();
        if let [first, second, ..] = catch_alls[..] {
            return Err(ConfigError::new(ConfigErrorKind::TwoCatchAllHandlers { first, second }));
        }
        router.log_table();
        Ok(router)
    }

    fn log_table(&self) {
        for (kind, table) in [("message", &self.messages), ("subscribe", &self.subscriptions)] {
            for route in &table.routes {
                tracing::debug!(
                    kind,
                    pattern = route.pattern.as_str(),
                    handler = route.handler.name,
                    send_to = ?route.handler.send_to,
                    "handler mapped"
                );
            }
        }
        for handler in &self.exceptions {
            tracing::debug!(
                handler = handler.name,
                catch_all = handler.catches.is_none(),
                "exception handler"
            );
        }
    }

    /// The handler of a SEND (`subscribe` false) or SUBSCRIBE to `destination`, which starts
    /// with the application prefix `prefix`.
    pub(crate) fn find(&self, subscribe: bool, prefix: &str, destination: &str) -> Option<Matched> {
        let table = if subscribe { &self.subscriptions } else { &self.messages };
        let lookup = destination::strip_prefix(prefix, destination);
        let (route, variables) = table.find(&lookup)?;
        Some(Matched { handler: route.handler, lookup: lookup.into(), variables })
    }

    /// The exception handler for `error`, if any.
    pub(crate) fn exception_handler(
        &self,
        error: &super::HandlerError,
    ) -> Option<&'static Handler> {
        self.exceptions.iter().copied().find(|h| h.catches.is_none_or(|catches| catches(error)))
    }
}

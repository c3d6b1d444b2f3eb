//! The HTTPS service: one listener, TLS 1.2/1.3 on rustls (ring), client certificates verified
//! against the ukey CA when offered, HTTP/1.1 and HTTP/2 on hyper, API v1 on axum.
//!
//! The accept loop is ours (not `axum::serve`) because each request must carry the client
//! certificate of its connection: the TLS acceptor reads it once per connection and every
//! request on that connection gets it as a [`ConnectionInfo`] extension.

pub mod api;
pub mod error;
pub mod manage;
mod server;
pub mod tls;

pub use server::{ServerLimits, run};

use crate::service::Peer;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the accept loop knows about a connection, attached to each of its requests.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    /// The verified client certificate, if the client offered one.
    pub peer: Option<Arc<Peer>>,
}

//! JSON-RPC over HTTP and WebSocket on one port (jsonrpsee): Bitcoin Core-style and
//! Ethereum-style method families plus the `meshnode_` namespace.

pub mod api;
pub mod auth;
mod btc;
pub mod client;
pub mod compat;
pub mod discover;
pub mod error;
mod eth;
pub mod limits;
pub mod params;
pub mod preverify;
pub mod server;
pub mod timing;
pub mod types;

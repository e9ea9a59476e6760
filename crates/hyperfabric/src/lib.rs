//! HyperFabric: move bytes, tensors and files between the nodes of a compute fabric over
//! real transports, verified end to end.
//!
//! Layers (see the README's Layout section): [`wire`] and [`proto`] are pure, sans-IO code, and
//! [`crate::core`] is the node's protocol as one sans-IO state machine (driven today by the
//! simulation `tests/node_sim.rs`, not yet by the runtime); [`transport`]
//! and [`runtime`] drive them with sockets, threads and the clock; [`Fabric`] is the API.
//! `docs/architecture.md` in the repository draws the layers, a frame's way from
//! [`Fabric::send`] to the far [`Fabric::recv`], which module takes which decision (route,
//! compression, zone, refusal, retransmission) and what is not yet in a sans-IO core.
#![deny(unsafe_code)]

pub mod alert;
pub mod auth;
pub mod bootstrap;
pub mod buffer;
pub mod collective;
pub mod compress;
pub mod config;
pub mod core;
pub mod diagnose;
pub mod error;
pub mod idle;
pub mod name;
pub mod node;
pub mod transform;
pub mod types;
pub mod wire;

pub use error::{Error, Result};
pub use name::NodeName;
pub use types::{DataType, Priority};
pub mod fabric;
pub mod membership;
pub mod metrics;
pub mod proto;
pub mod route;
pub mod runtime;
#[allow(unsafe_code)]
pub mod sys;
pub mod transport;

pub use fabric::{
    Compression, DataTypePolicy, Endpoint, Fabric, FabricBuilder, Hop, LoanedBuf, MultipathConfig,
    Payload, PingOptions, SendOptions, SendReport, Transform, LOAN_SLOT_BYTES,
};
pub use route::{LinkSample, Route, RouteError, RouteHop, Router, Strategy, Topology};
pub use runtime::{Completion, FileRead, PathReport, PathScheduler, PendingSend};
pub use runtime::{Message, PingStats};

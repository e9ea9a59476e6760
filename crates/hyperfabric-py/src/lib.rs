//! `hyperfabric._native`: the thin PyO3 layer under the `hyperfabric` Python package.
//!
//! It converts and calls the public Rust API ([`hyperfabric::Fabric`] and friends) and
//! nothing more; the guide's ergonomic API lives in Python (`python/hyperfabric/`). Every
//! call that can block (sends, receives, pings, loans, starting a node) releases the GIL.
//! Buffers are read in place ([`buffers::ReadBuf`]) and received payloads are exported to
//! Python as read-only buffers over the Rust-owned bytes ([`message::Message`]).
#![deny(unsafe_code)]

mod buffers;
mod config;
mod errors;
mod group;
mod handle;
mod loan;
mod member;
mod message;
mod node;
mod options;
mod report;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<node::Node>()?;
    m.add_class::<member::Member>()?;
    m.add_class::<options::SendOpts>()?;
    m.add_class::<message::Message>()?;
    m.add_class::<loan::Loan>()?;
    m.add_class::<group::Group>()?;
    m.add_class::<group::Work>()?;
    m.add_function(wrap_pyfunction!(config::validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(config::find_route, m)?)?;
    m.add_function(wrap_pyfunction!(config::profile_tuning, m)?)?;
    m.add("DATA_TYPES", data_type_names())?;
    m.add("HARDWARE_TYPES", hardware_names())?;
    m.add("LOAN_SLOT_BYTES", hyperfabric::LOAN_SLOT_BYTES)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

fn data_type_names() -> Vec<&'static str> {
    hyperfabric::DataType::ALL
        .iter()
        .map(|d| d.as_str())
        .collect()
}

fn hardware_names() -> Vec<&'static str> {
    hyperfabric::node::HardwareType::ALL
        .iter()
        .map(|h| h.as_str())
        .collect()
}

//! What Rust reports, as plain Python objects: a send's report as a dict (the original
//! package's result was a dict), ping statistics as a dict.

use hyperfabric::{PingStats, SendReport};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

pub fn send_report<'py>(py: Python<'py>, r: &SendReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("transfer_id", r.transfer_id)?;
    d.set_item("bytes", r.bytes)?;
    d.set_item("latency_ns", r.latency.as_nanos() as u64)?;
    d.set_item("throughput_gbps", r.throughput_gbps)?;
    d.set_item("path", &r.path)?;
    let hops = PyList::empty(py);
    for h in &r.hops {
        let hop = PyDict::new(py);
        hop.set_item("from", &h.from)?;
        hop.set_item("to", &h.to)?;
        hop.set_item("transport", h.transport.to_string())?;
        hops.append(hop)?;
    }
    d.set_item("hops", hops)?;
    d.set_item("compression_ratio", r.compression_ratio)?;
    d.set_item("compression", r.compression.to_string())?;
    d.set_item("transform", r.transform.to_string())?;
    d.set_item("bytes_saved", r.bytes_saved)?;
    d.set_item("retransmitted_bytes", r.retransmitted_bytes)?;
    d.set_item("failovers", r.failovers)?;
    d.set_item("data_type", r.data_type.as_str())?;
    d.set_item("priority", r.priority.as_str())?;
    if r.paths.len() > 1 {
        let paths = PyList::empty(py);
        for p in &r.paths {
            let pd = PyDict::new(py);
            pd.set_item("via", &p.via)?;
            pd.set_item("weight", p.weight)?;
            pd.set_item("bytes", p.bytes)?;
            pd.set_item("chunks", p.chunks)?;
            pd.set_item("failed", p.failed)?;
            pd.set_item("skipped", p.skipped)?;
            pd.set_item("error", p.error.as_deref())?;
            paths.append(pd)?;
        }
        d.set_item("paths", paths)?;
    }
    Ok(d)
}

pub fn ping_stats<'py>(py: Python<'py>, s: &PingStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("peer", &s.peer)?;
    d.set_item("transport", s.transport.to_string())?;
    d.set_item("size_bytes", s.size_bytes)?;
    d.set_item("sent", s.sent)?;
    d.set_item("received", s.received)?;
    d.set_item("lost", s.lost)?;
    d.set_item("loss_pct", s.loss_pct)?;
    d.set_item("min_ns", s.min_ns)?;
    d.set_item("max_ns", s.max_ns)?;
    d.set_item("mean_ns", s.mean_ns)?;
    d.set_item("median_ns", s.median_ns)?;
    d.set_item("p99_ns", s.p99_ns)?;
    d.set_item("p999_ns", s.p999_ns)?;
    d.set_item("stddev_ns", s.stddev_ns)?;
    d.set_item("rtt_median_ns", s.rtt_median_ns)?;
    Ok(d)
}

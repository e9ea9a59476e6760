//! `Member`: a node that joined a fabric through etcd ([`hyperfabric::membership::join`]),
//! as `hfabric serve --membership` does: the URL and its TLS/user settings from the
//! keywords over the fabric file's `[membership]`, its record kept under a lease and the
//! others learned through etcd's watch until `leave`.

use crate::buffers::ReadBuf;
use crate::config::to_json;
use crate::errors::{py_result, to_py};
use crate::message::Message;
use crate::options::{parse, seconds, SendOpts};
use crate::report::send_report;
use hyperfabric::bootstrap::Launch;
use hyperfabric::config::FabricConfig;
use hyperfabric::membership::etcd::EtcdUrl;
use hyperfabric::membership::etcd_access::EtcdAccess;
use hyperfabric::membership::{JoinOptions, Joined};
use hyperfabric::Error;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a receive waits between checks for Python signals.
const WAIT_SLICE: Duration = Duration::from_millis(100);

#[pyclass(frozen, module = "hyperfabric._native")]
pub struct Member {
    /// `None` after `leave`.
    joined: Mutex<Option<Joined>>,
    fabric: Mutex<Option<Arc<hyperfabric::Fabric>>>,
    id: String,
}

impl Member {
    fn fabric(&self) -> PyResult<Arc<hyperfabric::Fabric>> {
        self.fabric
            .lock()
            .clone()
            .ok_or_else(|| to_py(Error::Shutdown))
    }
}

/// The etcd keywords as the library's access settings (the password read from its file).
fn access(
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    user: Option<String>,
    password_file: Option<PathBuf>,
) -> PyResult<EtcdAccess> {
    let password = match (&user, &password_file) {
        (Some(_), Some(f)) => Some(py_result(EtcdAccess::read_password_file(f))?),
        (None, Some(_)) => {
            return Err(to_py(Error::InvalidArgument(
                "etcd_password_file is the password of etcd_user: give etcd_user".into(),
            )))
        }
        _ => None,
    };
    Ok(EtcdAccess {
        cacert,
        cert,
        key,
        user,
        password,
    })
}

#[pymethods]
impl Member {
    /// Joins: `text` is the fabric file (or None), `membership` an etcd URL over its
    /// `membership.url`; waits up to `timeout_s` for `world_size` nodes.
    #[staticmethod]
    #[pyo3(signature = (text, origin, node, membership=None, world_size=1, lease_s=5.0,
        timeout_s=60.0, listen=None, etcd_cacert=None, etcd_cert=None, etcd_key=None,
        etcd_user=None, etcd_password_file=None))]
    #[allow(clippy::too_many_arguments)]
    fn join(
        py: Python<'_>,
        text: Option<&str>,
        origin: &str,
        node: &str,
        membership: Option<&str>,
        world_size: u32,
        lease_s: f64,
        timeout_s: f64,
        listen: Option<&str>,
        etcd_cacert: Option<PathBuf>,
        etcd_cert: Option<PathBuf>,
        etcd_key: Option<PathBuf>,
        etcd_user: Option<String>,
        etcd_password_file: Option<PathBuf>,
    ) -> PyResult<Member> {
        let file = text
            .map(|t| py_result(FabricConfig::from_toml_str(t, origin)))
            .transpose()?;
        let url: Option<EtcdUrl> = membership.map(|m| parse("membership", m)).transpose()?;
        let file_url = file.as_ref().and_then(|f| f.membership.url.as_ref());
        if url.is_none() && file_url.is_none() {
            return Err(to_py(Error::InvalidArgument(
                "join: no etcd to join through: give membership=\"etcd://HOST:PORT/prefix\" \
                 or a fabric file with membership.url"
                    .into(),
            )));
        }
        let listen: Option<SocketAddr> = listen.map(|l| parse("listen", l)).transpose()?;
        let opts = JoinOptions {
            launch: Launch::explicit(world_size),
            file,
            node_id: Some(node.to_owned()),
            listen,
            timeout: seconds("timeout_s", timeout_s)?,
            lease: seconds("lease_s", lease_s)?,
            etcd: url,
            etcd_access: access(
                etcd_cacert,
                etcd_cert,
                etcd_key,
                etcd_user,
                etcd_password_file,
            )?,
        };
        let joined = py
            .detach(|| hyperfabric::membership::join(opts, |b| b))
            .map_err(to_py)?;
        Ok(Member {
            id: joined.fabric.node_id().to_owned(),
            fabric: Mutex::new(Some(Arc::clone(&joined.fabric))),
            joined: Mutex::new(Some(joined)),
        })
    }

    #[getter]
    fn node_id(&self) -> &str {
        &self.id
    }

    /// The address this node listens on (`host:port`).
    #[getter]
    fn local_addr(&self) -> PyResult<String> {
        Ok(self.fabric()?.local_addr().to_string())
    }

    /// The nodes this node knows now, itself included (sorted).
    fn known_nodes(&self) -> PyResult<Vec<String>> {
        let mut n = self.fabric()?.known_nodes();
        n.sort();
        Ok(n)
    }

    /// What `hfabric serve --json` reports in `bootstrap`: the directory and the etcd
    /// settings in force (never the password), and how the directory was read (JSON).
    fn membership_json(&self) -> PyResult<String> {
        let guard = self.joined.lock();
        let j = guard.as_ref().ok_or_else(|| to_py(Error::Shutdown))?;
        to_json(&serde_json::json!({
            "directory": j.directory, "etcd": j.etcd, "reads": j.reads(),
        }))
    }

    /// The effective-configuration report (JSON), `membership.*` fields included.
    fn effective_config_json(&self) -> PyResult<String> {
        to_json(self.fabric()?.effective_config())
    }

    /// Sends `data` (any C-contiguous buffer) and returns the report once `dst`
    /// acknowledged every byte.
    fn send<'py>(
        &self,
        py: Python<'py>,
        dst: &str,
        data: &Bound<'py, PyAny>,
        opts: &SendOpts,
    ) -> PyResult<Bound<'py, PyDict>> {
        let buf = ReadBuf::get(data)?;
        let (bytes, o, f) = (buf.bytes(), opts.opts.clone(), self.fabric()?);
        let report = py.detach(|| f.send(dst, bytes, o)).map_err(to_py)?;
        send_report(py, &report)
    }

    /// The next received message; raises `Timeout` after `timeout_s` (None: forever).
    #[pyo3(signature = (timeout_s=None))]
    fn recv(&self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<Message> {
        let t = timeout_s.map(|s| seconds("timeout_s", s)).transpose()?;
        let deadline = t.map(|t| Instant::now() + t);
        let f = self.fabric()?;
        loop {
            let slice = deadline.map_or(WAIT_SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
            });
            match py.detach(|| f.recv_timeout(slice)) {
                Ok(m) => return Ok(Message::new(m)),
                Err(Error::Timeout { .. }) => match (deadline, t) {
                    (Some(d), Some(t)) if Instant::now() >= d => {
                        return Err(to_py(Error::Timeout {
                            what: format!("a message for `{}`", self.id),
                            after: t,
                        }))
                    }
                    _ => py.check_signals()?,
                },
                Err(e) => return Err(to_py(e)),
            }
        }
    }

    /// Withdraws this node's record (the others dismiss it) and stops the node. Later
    /// calls raise `Shutdown`.
    fn leave(&self, py: Python<'_>) {
        let joined = self.joined.lock().take();
        let fabric = self.fabric.lock().take();
        py.detach(move || {
            if let Some(mut j) = joined {
                j.leave();
            }
            drop(fabric);
        });
    }
}

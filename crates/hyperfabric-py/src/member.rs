//! `Member`: a node that joined a fabric ([`hyperfabric::membership::join`]) as `hfabric
//! serve` does: through etcd (`--membership`: the URL and its TLS/user settings from the
//! keywords over the fabric file's `[membership]`, the others learned through its watch)
//! or from the launcher (`--bootstrap`: torchrun, Slurm, Open MPI or explicit rank/world/
//! master; rank 0 serves the rendezvous store), its record kept under a lease until
//! `leave`. Sends, receives, pings, loans and multipath are the `Node`'s ([`handle`]).

use crate::config::to_json;
use crate::errors::{py_result, to_py};
use crate::handle::{self, Handle, PingArgs};
use crate::loan::Loan;
use crate::message::Message;
use crate::options::{parse, seconds, SendOpts};
use hyperfabric::bootstrap::{Explicit, Launch, Mode};
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

impl Handle for Member {
    fn id(&self) -> &str {
        &self.id
    }

    /// The fabric is cloned out of the lock: a long call never holds it against `leave`.
    fn try_with<R>(
        &self,
        f: impl FnOnce(&hyperfabric::Fabric) -> hyperfabric::Result<R>,
    ) -> hyperfabric::Result<R> {
        let fabric = self.fabric.lock().clone().ok_or(Error::Shutdown)?;
        f(&fabric)
    }
}

/// The launcher keywords: where this process's rank comes from.
#[derive(Default)]
struct LaunchArgs {
    bootstrap: Option<String>,
    rank: Option<u32>,
    world_size: Option<u32>,
    local_rank: Option<u32>,
    master: Option<String>,
}

/// `HOST:PORT` (brackets around an IPv6 host dropped), the port above 0.
fn parse_master(s: &str) -> PyResult<(String, u16)> {
    let bad = |why: &str| to_py(Error::InvalidArgument(format!("master `{s}`: {why}")));
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
    if host.is_empty() || port == 0 {
        return Err(bad("expected HOST:PORT with a port above 0"));
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

impl LaunchArgs {
    /// The launch, as `hfabric serve` decides it: with `bootstrap` (or without etcd, where
    /// `auto` is the default) from the keywords over the launcher's environment; with
    /// etcd and no `bootstrap`, `world_size` stated by hand (rank, local_rank and master
    /// then mean nothing and are refused).
    fn launch(self, etcd: bool) -> PyResult<Launch> {
        let mode = match (&self.bootstrap, etcd) {
            (Some(b), _) => parse::<Mode>("bootstrap", b)?,
            (None, false) => Mode::Auto,
            (None, true) => {
                let given = [
                    ("rank", self.rank.is_some()),
                    ("local_rank", self.local_rank.is_some()),
                    ("master", self.master.is_some()),
                ];
                if let Some((k, _)) = given.iter().find(|(_, set)| *set) {
                    return Err(to_py(Error::InvalidArgument(format!(
                        "join: {k} applies to a launcher bootstrap: give bootstrap=\"auto\" \
                         (or explicit, torchrun, slurm, mpi)"
                    ))));
                }
                return Ok(Launch::explicit(self.world_size.unwrap_or(1)));
            }
        };
        let explicit = Explicit {
            rank: self.rank,
            world_size: self.world_size,
            local_rank: self.local_rank,
            master: self.master.as_deref().map(parse_master).transpose()?,
        };
        Launch::detect(mode, &explicit, &|k| std::env::var(k).ok()).map_err(|e| {
            let why = match (e, etcd) {
                (hyperfabric::bootstrap::BootstrapError::NoLauncher, false) => {
                    "no etcd (membership=\"etcd://HOST:PORT/prefix\" or the file's \
                     membership.url) and no launcher: run under torchrun (RANK), Slurm \
                     (SLURM_PROCID) or Open MPI (OMPI_COMM_WORLD_RANK), or give \
                     bootstrap=\"explicit\" with rank, world_size and master"
                        .to_owned()
                }
                (e, _) => format!("bootstrap: {e}"),
            };
            to_py(Error::InvalidArgument(format!("join: {why}")))
        })
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
    /// `membership.url`; without either, from the launcher (`bootstrap`, default `auto`).
    /// Waits up to `timeout_s` for the world's nodes.
    #[staticmethod]
    #[pyo3(signature = (text, origin, node=None, membership=None, world_size=None, lease_s=5.0,
        timeout_s=60.0, listen=None, etcd_cacert=None, etcd_cert=None, etcd_key=None,
        etcd_user=None, etcd_password_file=None, bootstrap=None, rank=None, local_rank=None,
        master=None))]
    #[allow(clippy::too_many_arguments)]
    fn join(
        py: Python<'_>,
        text: Option<&str>,
        origin: &str,
        node: Option<String>,
        membership: Option<&str>,
        world_size: Option<u32>,
        lease_s: f64,
        timeout_s: f64,
        listen: Option<&str>,
        etcd_cacert: Option<PathBuf>,
        etcd_cert: Option<PathBuf>,
        etcd_key: Option<PathBuf>,
        etcd_user: Option<String>,
        etcd_password_file: Option<PathBuf>,
        bootstrap: Option<String>,
        rank: Option<u32>,
        local_rank: Option<u32>,
        master: Option<String>,
    ) -> PyResult<Member> {
        let file = text
            .map(|t| py_result(FabricConfig::from_toml_str(t, origin)))
            .transpose()?;
        let url: Option<EtcdUrl> = membership.map(|m| parse("membership", m)).transpose()?;
        let file_url = file.as_ref().and_then(|f| f.membership.url.as_ref());
        let etcd = url.is_some() || file_url.is_some();
        let launcher = bootstrap.is_some() || !etcd;
        if etcd && !launcher && node.is_none() {
            return Err(to_py(Error::InvalidArgument(
                "join: through etcd without a launcher, each node needs its own node=\"ID\"".into(),
            )));
        }
        let launch = LaunchArgs {
            bootstrap,
            rank,
            world_size,
            local_rank,
            master,
        }
        .launch(etcd)?;
        let listen: Option<SocketAddr> = listen.map(|l| parse("listen", l)).transpose()?;
        let opts = JoinOptions {
            launch,
            file,
            node_id: node,
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
            "launch": j.launch, "store": j.store.map(|a| a.to_string()),
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
        handle::send(self, py, dst, data, opts)
    }

    /// The next received message; raises `Timeout` after `timeout_s` (None: forever).
    #[pyo3(signature = (timeout_s=None))]
    fn recv(&self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<Message> {
        let t = timeout_s.map(|s| seconds("timeout_s", s)).transpose()?;
        Ok(Message::new(handle::next_message(self, py, t)?))
    }

    /// Pings `dst` as `Node.ping` does; with `samples=True` the dict also holds every
    /// one-way sample (ns).
    #[pyo3(signature = (dst, size=64, count=10, warmup=0, timeout_s=1.0, priority=None, samples=false))]
    #[allow(clippy::too_many_arguments)]
    fn ping<'py>(
        &self,
        py: Python<'py>,
        dst: &str,
        size: usize,
        count: u64,
        warmup: u64,
        timeout_s: f64,
        priority: Option<&str>,
        samples: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let a = PingArgs {
            size,
            count,
            warmup,
            timeout_s,
            priority,
        };
        handle::ping(self, py, dst, a, samples)
    }

    /// One ping of `size` bytes: its round trip in nanoseconds.
    #[pyo3(signature = (dst, size=64, timeout_s=1.0))]
    fn ping1(&self, py: Python<'_>, dst: &str, size: usize, timeout_s: f64) -> PyResult<u64> {
        handle::ping1(self, py, dst, size, timeout_s)
    }

    /// A writable buffer for `dst` (a shared-memory pool slot where the link has one).
    fn loan(&self, py: Python<'_>, dst: &str, len: usize) -> PyResult<Loan> {
        handle::loan(self, py, dst, len)
    }

    /// Sends a loan (by descriptor over its own shared-memory link).
    fn send_loaned<'py>(
        &self,
        py: Python<'py>,
        loan: &Loan,
        opts: &SendOpts,
    ) -> PyResult<Bound<'py, PyDict>> {
        handle::send_loaned(self, py, loan, opts)
    }

    /// Stripes later sends to `dst` over `paths` (first hop, weight).
    #[pyo3(signature = (dst, paths, scheduler="weighted_round_robin", health_check_interval_s=1.0))]
    fn configure_multipath(
        &self,
        dst: &str,
        paths: Vec<(String, f64)>,
        scheduler: &str,
        health_check_interval_s: f64,
    ) -> PyResult<()> {
        handle::configure_multipath(self, dst, paths, scheduler, health_check_interval_s)
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

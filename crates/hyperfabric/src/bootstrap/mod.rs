//! Joining a fabric where the job already is: the launcher's variables say who we are
//! ([`launch`]), the rendezvous store or etcd says who the others are ([`crate::membership`]),
//! and the host id says which of them share our memory ([`hostid`]).

pub mod hostid;
pub mod launch;
pub mod nodelist;

pub use hostid::HostId;
pub use launch::{Explicit, Launch, Mode};

/// Why the launcher's environment cannot be used; each names the variable at fault.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BootstrapError {
    #[error("{var} is required by the {launcher} bootstrap but not set")]
    Missing { var: String, launcher: &'static str },
    #[error("{var}=`{value}`: {reason}")]
    BadValue {
        var: String,
        value: String,
        reason: String,
    },
    #[error(
        "no launcher found: give --rank/--world-size/--master, or run under torchrun (RANK), \
         Slurm (SLURM_PROCID) or Open MPI (OMPI_COMM_WORLD_RANK)"
    )]
    NoLauncher,
}

impl From<BootstrapError> for crate::Error {
    fn from(e: BootstrapError) -> crate::Error {
        crate::Error::InvalidArgument(e.to_string())
    }
}

//! "Same host" as the kernel sees it: shared memory works between two processes when they
//! see the same /dev/shm (IPC namespace, same machine); a peer in another network namespace
//! is reached over TCP like a remote host. So a host id is the machine id plus the inodes of
//! the network and IPC namespaces, never a guess from the address being loopback.

use serde::{Deserialize, Serialize};

/// Longest host id accepted from a peer or the environment.
pub const MAX_HOST_ID_BYTES: usize = 256;

/// Variable that replaces the computed id (e.g. to call two namespaces one host).
pub const HOST_ID_VAR: &str = "HF_HOST_ID";

/// Who this process shares memory with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostId(pub String);

impl HostId {
    /// `HF_HOST_ID` when set, else `machine-id/net:[inode]/ipc:[inode]` of this process.
    pub fn of_this_process() -> HostId {
        if let Some(v) = std::env::var(HOST_ID_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty() && v.len() <= MAX_HOST_ID_BYTES)
        {
            return HostId(v.trim().to_owned());
        }
        HostId::computed()
    }

    /// The id from the kernel's view alone (ignores `HF_HOST_ID`).
    pub fn computed() -> HostId {
        let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            // No machine id: the boot id still tells machines apart.
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                    .ok()
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown-machine".into());
        let ns = |kind: &str| {
            std::fs::read_link(format!("/proc/self/ns/{kind}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| format!("{kind}:?"))
        };
        HostId(format!("{machine}/{}/{}", ns("net"), ns("ipc")))
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_machine_and_both_namespaces() {
        let id = HostId::computed();
        assert!(id.0.contains("/net:["), "{id}");
        assert!(id.0.contains("/ipc:["), "{id}");
        assert_eq!(id, HostId::computed());
    }
}

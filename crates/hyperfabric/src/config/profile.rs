//! Tuning profiles: the two named starting points (`high_throughput`, `low_latency`) and the
//! limits every tuning must respect, whatever the file overrides.

pub use crate::idle::IdleStrategy;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const GIB: u64 = 1024 * 1024 * 1024;

/// Smallest and largest frame payload a fabric may use.
pub const MAX_PACKET_SIZE_MIN: usize = 512;
pub const MAX_PACKET_SIZE_MAX: usize = 16 * MIB;
/// Smallest socket buffer we ask the kernel for.
pub const SOCKET_BUFFER_MIN: usize = 64 * KIB;
/// Upper bounds that keep a typo from asking for absurd resources.
pub const BUFFER_POOL_MAX: usize = 1 << 20;
/// Bounds of one shared-memory pool slot (whole pages; one loan is at most one slot).
pub const POOL_SLOT_BYTES_MIN: usize = 4 * KIB;
pub const POOL_SLOT_BYTES_MAX: usize = 64 * MIB;
pub const SOCKET_BUFFER_MAX: usize = 1 << 30;
pub const WINDOW_BYTES_MAX: u64 = 16 * GIB;
pub const TIMEOUT_MS_MAX: u64 = 24 * 3600 * 1000;
pub const MAX_RETRANSMITS_MAX: u32 = 1000;
pub const MAX_CONNECTIONS_MAX: usize = 1 << 20;
/// Largest transfer size a file may allow (1 TiB).
pub const MAX_TRANSFER_BYTES_MAX: u64 = 1024 * GIB;
/// Linux `TCP_CA_NAME_MAX` minus the NUL.
pub const CONGESTION_NAME_MAX: usize = 15;

/// The named starting points for [`Tuning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileName {
    HighThroughput,
    LowLatency,
}

impl ProfileName {
    pub const ALL: [ProfileName; 2] = [ProfileName::HighThroughput, ProfileName::LowLatency];

    pub const fn as_str(self) -> &'static str {
        match self {
            ProfileName::HighThroughput => "high_throughput",
            ProfileName::LowLatency => "low_latency",
        }
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProfileName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProfileName::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown profile \"{s}\" (expected one of: high_throughput, low_latency)")
            })
    }
}

/// What a store directory does when a received file's name is taken (`on_conflict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Store it under the first free name `stem.N.ext` (N = 1, 2, ...); the sender is told.
    #[default]
    Rename,
    /// Replace the existing file.
    Overwrite,
    /// Refuse the transfer (the sender gets the reason); the existing file stays.
    Refuse,
}

impl OnConflict {
    pub const ALL: [OnConflict; 3] = [
        OnConflict::Rename,
        OnConflict::Overwrite,
        OnConflict::Refuse,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OnConflict::Rename => "rename",
            OnConflict::Overwrite => "overwrite",
            OnConflict::Refuse => "refuse",
        }
    }
}

impl FromStr for OnConflict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OnConflict::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown on_conflict \"{s}\" (expected rename, overwrite or refuse)")
            })
    }
}

/// Every knob the runtime reads. Sizes are bytes, times are milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    pub buffer_pool_buffers: usize,
    /// Bytes of one shared-memory pool slot (the guide's `buffer_size`): the largest loan.
    #[serde(default = "default_pool_slot_bytes")]
    pub buffer_pool_slot_bytes: usize,
    pub max_packet_size: usize,
    pub socket_buffer_bytes: usize,
    pub tcp_nodelay: bool,
    /// `None`: the kernel's default algorithm (written `"default"` in a file).
    pub congestion_control: Option<String>,
    pub busy_poll: bool,
    pub idle_strategy: IdleStrategy,
    /// Bytes in flight per transfer.
    pub window_bytes: u64,
    pub connect_timeout_ms: u64,
    pub handshake_timeout_ms: u64,
    pub send_timeout_ms: u64,
    pub retransmit_timeout_ms: u64,
    pub max_retransmits: u32,
    /// The largest transfer a node accepts.
    pub max_transfer_bytes: u64,
    pub max_connections: usize,
    /// Accepted connections still in their handshake (not yet authenticated): a cap of
    /// their own, so a flood of strangers never takes the members' `max_connections`.
    pub max_pending_handshakes: usize,
    /// What a store directory does with a file whose name is taken.
    pub on_conflict: OnConflict,
    /// Priority scheduling per link: ultra_high/high get their own connection (no queueing
    /// behind bulk data in socket buffers) and lower priorities defer to higher ones.
    pub qos_enabled: bool,
    /// Pace every connection to at most this many Gbit/s (0: off). For testing what a slow
    /// link does (compression, QoS) on a machine whose links are all fast.
    pub throttle_gbps: f64,
    /// TCP connections a bulk link to a peer is striped over: the chunks of its transfers
    /// go out round-robin on them (1: one connection, as without the knob). Shared-memory
    /// links and the urgent lane keep one.
    #[serde(default = "default_connections_per_link")]
    pub connections_per_link: u32,
}

fn default_pool_slot_bytes() -> usize {
    MIB
}

fn default_connections_per_link() -> u32 {
    1
}

/// The most TCP connections one link may be striped over.
pub const CONNECTIONS_PER_LINK_MAX: u32 = 16;

impl Tuning {
    pub fn for_profile(p: ProfileName) -> Tuning {
        let common = Tuning {
            buffer_pool_buffers: 32,
            buffer_pool_slot_bytes: MIB,
            max_packet_size: MIB,
            socket_buffer_bytes: 64 * MIB,
            tcp_nodelay: true,
            congestion_control: Some("bbr".to_string()),
            busy_poll: false,
            idle_strategy: IdleStrategy::SpinPark,
            window_bytes: 64 * MIB as u64,
            connect_timeout_ms: 2_000,
            handshake_timeout_ms: 5_000,
            send_timeout_ms: 30_000,
            retransmit_timeout_ms: 1_000,
            max_retransmits: 8,
            max_transfer_bytes: 16 * GIB,
            max_connections: 1024,
            max_pending_handshakes: 256,
            on_conflict: OnConflict::Rename,
            qos_enabled: true,
            throttle_gbps: 0.0,
            connections_per_link: 1,
        };
        match p {
            ProfileName::HighThroughput => common,
            ProfileName::LowLatency => Tuning {
                buffer_pool_buffers: 32,
                max_packet_size: 4 * KIB,
                socket_buffer_bytes: 4 * MIB,
                congestion_control: None,
                busy_poll: true,
                idle_strategy: IdleStrategy::BusySpin,
                window_bytes: 4 * MIB as u64,
                retransmit_timeout_ms: 200,
                ..common
            },
        }
    }

    /// Checks every limit; the error is `(field, reason)` with the field as named in `[fabric]`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.validate_sizes().map_err(|(f, r)| (f.to_string(), r))?;
        self.validate_times().map_err(|(f, r)| (f.to_string(), r))?;
        in_range(
            "connections_per_link",
            u64::from(self.connections_per_link),
            1,
            u64::from(CONNECTIONS_PER_LINK_MAX),
        )
        .map_err(|(f, r)| (f.to_string(), r))?;
        if !(self.throttle_gbps.is_finite() && self.throttle_gbps >= 0.0) {
            return Err((
                "throttle_gbps".into(),
                format!("must be a number >= 0 (got {})", self.throttle_gbps),
            ));
        }
        self.validate_congestion()
            .map_err(|r| ("congestion_control".to_string(), r))
    }

    fn validate_sizes(&self) -> Result<(), (&'static str, String)> {
        in_range(
            "buffer_pool_buffers",
            self.buffer_pool_buffers as u64,
            1,
            BUFFER_POOL_MAX as u64,
        )?;
        in_range(
            "buffer_pool_slot_bytes",
            self.buffer_pool_slot_bytes as u64,
            POOL_SLOT_BYTES_MIN as u64,
            POOL_SLOT_BYTES_MAX as u64,
        )?;
        if !self.buffer_pool_slot_bytes.is_multiple_of(4 * KIB) {
            let why = format!(
                "must be a multiple of 4096 (whole pages; got {})",
                self.buffer_pool_slot_bytes
            );
            return Err(("buffer_pool_slot_bytes", why));
        }
        in_range(
            "max_packet_size",
            self.max_packet_size as u64,
            MAX_PACKET_SIZE_MIN as u64,
            MAX_PACKET_SIZE_MAX as u64,
        )?;
        in_range(
            "socket_buffer_bytes",
            self.socket_buffer_bytes as u64,
            SOCKET_BUFFER_MIN as u64,
            SOCKET_BUFFER_MAX as u64,
        )?;
        in_range(
            "window_bytes",
            self.window_bytes,
            self.max_packet_size as u64,
            WINDOW_BYTES_MAX,
        )
        .map_err(|(f, r)| {
            (
                f,
                format!("{r} (it must hold at least one max_packet_size)"),
            )
        })?;
        in_range(
            "max_transfer_bytes",
            self.max_transfer_bytes,
            1,
            MAX_TRANSFER_BYTES_MAX,
        )?;
        in_range(
            "max_connections",
            self.max_connections as u64,
            1,
            MAX_CONNECTIONS_MAX as u64,
        )?;
        in_range(
            "max_pending_handshakes",
            self.max_pending_handshakes as u64,
            1,
            MAX_CONNECTIONS_MAX as u64,
        )
    }

    fn validate_times(&self) -> Result<(), (&'static str, String)> {
        in_range(
            "connect_timeout_ms",
            self.connect_timeout_ms,
            1,
            TIMEOUT_MS_MAX,
        )?;
        in_range(
            "handshake_timeout_ms",
            self.handshake_timeout_ms,
            1,
            TIMEOUT_MS_MAX,
        )?;
        in_range("send_timeout_ms", self.send_timeout_ms, 1, TIMEOUT_MS_MAX)?;
        in_range(
            "retransmit_timeout_ms",
            self.retransmit_timeout_ms,
            1,
            TIMEOUT_MS_MAX,
        )?;
        in_range(
            "max_retransmits",
            u64::from(self.max_retransmits),
            0,
            u64::from(MAX_RETRANSMITS_MAX),
        )
    }

    fn validate_congestion(&self) -> Result<(), String> {
        let Some(name) = &self.congestion_control else {
            return Ok(());
        };
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if name.is_empty() || name.len() > CONGESTION_NAME_MAX || !ok_chars {
            return Err(format!(
                "\"{name}\" is not a congestion control name (1..={CONGESTION_NAME_MAX} ASCII letters, digits, '_' or '-'; \"default\" for the kernel's)"
            ));
        }
        Ok(())
    }
}

fn in_range(
    field: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), (&'static str, String)> {
    if value < min || value > max {
        return Err((field, format!("must be in {min}..={max} (got {value})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_differ_as_documented() {
        let ht = Tuning::for_profile(ProfileName::HighThroughput);
        let ll = Tuning::for_profile(ProfileName::LowLatency);
        assert_eq!((ht.buffer_pool_buffers, ll.buffer_pool_buffers), (32, 32));
        assert_eq!((ht.max_packet_size, ll.max_packet_size), (1 << 20, 4096));
        assert_eq!(
            (ht.socket_buffer_bytes, ll.socket_buffer_bytes),
            (64 << 20, 4 << 20)
        );
        assert_eq!(ht.congestion_control.as_deref(), Some("bbr"));
        assert_eq!(ll.congestion_control, None);
        assert!(!ht.busy_poll && ll.busy_poll);
        assert_eq!(
            (ht.idle_strategy, ll.idle_strategy),
            (IdleStrategy::SpinPark, IdleStrategy::BusySpin)
        );
        assert_eq!((ht.window_bytes, ll.window_bytes), (64 << 20, 4 << 20));
        assert_eq!(
            (ht.retransmit_timeout_ms, ll.retransmit_timeout_ms),
            (1000, 200)
        );
        assert!(ht.tcp_nodelay && ll.tcp_nodelay);
        assert_eq!(ht.max_transfer_bytes, 16 << 30);
        assert_eq!(ht.validate(), Ok(()));
        assert_eq!(ll.validate(), Ok(()));
    }

    #[test]
    fn profile_names_parse() {
        for p in ProfileName::ALL {
            assert_eq!(p.to_string().parse::<ProfileName>(), Ok(p));
        }
        assert!("fast"
            .parse::<ProfileName>()
            .unwrap_err()
            .contains("low_latency"));
    }

    #[test]
    fn limits_are_enforced() {
        let base = Tuning::for_profile(ProfileName::HighThroughput);
        type Case = (fn(&mut Tuning), &'static str);
        let cases: Vec<Case> = vec![
            (|t| t.max_packet_size = 100, "max_packet_size"),
            (|t| t.max_packet_size = 32 << 20, "max_packet_size"),
            (|t| t.socket_buffer_bytes = 1000, "socket_buffer_bytes"),
            (|t| t.window_bytes = 1000, "window_bytes"),
            (|t| t.connect_timeout_ms = 0, "connect_timeout_ms"),
            (|t| t.retransmit_timeout_ms = 0, "retransmit_timeout_ms"),
            (|t| t.max_retransmits = 1001, "max_retransmits"),
            (|t| t.buffer_pool_buffers = 0, "buffer_pool_buffers"),
            (|t| t.max_connections = 0, "max_connections"),
            (|t| t.connections_per_link = 0, "connections_per_link"),
            (|t| t.connections_per_link = 17, "connections_per_link"),
            (
                |t| t.congestion_control = Some("b b r".into()),
                "congestion_control",
            ),
        ];
        for (mutate, field) in cases {
            let mut t = base.clone();
            mutate(&mut t);
            assert_eq!(t.validate().unwrap_err().0, field);
        }
    }
}

//! The guide's message vocabulary: what a message carries and how urgent it is.
//!
//! Both enums travel in the frame header as one byte each; the codes below are part of wire
//! format v1 (`docs/wire.md`) and must never be renumbered.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a transfer carries. Policies (priority, compression, transforms) hang off this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Tensor,
    Gradient,
    Parameter,
    Activation,
    QuantumState,
    NeuromorphicSpike,
    ControlMessage,
    Heartbeat,
    #[default]
    Custom,
}

impl DataType {
    pub const ALL: [DataType; 9] = [
        DataType::Tensor,
        DataType::Gradient,
        DataType::Parameter,
        DataType::Activation,
        DataType::QuantumState,
        DataType::NeuromorphicSpike,
        DataType::ControlMessage,
        DataType::Heartbeat,
        DataType::Custom,
    ];

    /// The byte that stands for this data type in a frame header.
    pub const fn code(self) -> u8 {
        match self {
            DataType::Tensor => 1,
            DataType::Gradient => 2,
            DataType::Parameter => 3,
            DataType::Activation => 4,
            DataType::QuantumState => 5,
            DataType::NeuromorphicSpike => 6,
            DataType::ControlMessage => 7,
            DataType::Heartbeat => 8,
            DataType::Custom => 9,
        }
    }

    pub fn from_code(code: u8) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.code() == code)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            DataType::Tensor => "tensor",
            DataType::Gradient => "gradient",
            DataType::Parameter => "parameter",
            DataType::Activation => "activation",
            DataType::QuantumState => "quantum_state",
            DataType::NeuromorphicSpike => "neuromorphic_spike",
            DataType::ControlMessage => "control_message",
            DataType::Heartbeat => "heartbeat",
            DataType::Custom => "custom",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown data type `{s}` (expected one of: {})",
                    names(&DataType::ALL.map(DataType::as_str))
                )
            })
    }
}

/// The guide's five priorities, most urgent first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    UltraHigh,
    High,
    #[default]
    Normal,
    Low,
    Background,
}

impl Priority {
    pub const ALL: [Priority; 5] = [
        Priority::UltraHigh,
        Priority::High,
        Priority::Normal,
        Priority::Low,
        Priority::Background,
    ];

    /// The byte that stands for this priority in a frame header (0 = most urgent).
    pub const fn code(self) -> u8 {
        match self {
            Priority::UltraHigh => 0,
            Priority::High => 1,
            Priority::Normal => 2,
            Priority::Low => 3,
            Priority::Background => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.code() == code)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::UltraHigh => "ultra_high",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
            Priority::Background => "background",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown priority `{s}` (expected one of: {})",
                    names(&Priority::ALL.map(Priority::as_str))
                )
            })
    }
}

fn names(all: &[&str]) -> String {
    all.join(", ")
}

/// How a route is chosen (see [`crate::route`] for each one's definition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    ShortestPath,
    #[default]
    LowestLatency,
    HighestBandwidth,
    LoadBalanced,
    Predictive,
    QuantumOptimized,
}

impl Strategy {
    pub const ALL: [Strategy; 6] = [
        Strategy::ShortestPath,
        Strategy::LowestLatency,
        Strategy::HighestBandwidth,
        Strategy::LoadBalanced,
        Strategy::Predictive,
        Strategy::QuantumOptimized,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::ShortestPath => "shortest_path",
            Strategy::LowestLatency => "lowest_latency",
            Strategy::HighestBandwidth => "highest_bandwidth",
            Strategy::LoadBalanced => "load_balanced",
            Strategy::Predictive => "predictive",
            Strategy::QuantumOptimized => "quantum_optimized",
        }
    }

    pub(crate) const fn index(self) -> u8 {
        self as u8
    }

    /// The code a frame header carries (byte 11, docs/wire.md): 1..=6; 0 means none.
    pub const fn wire_code(self) -> u8 {
        self as u8 + 1
    }

    /// The strategy of a header's code; `None` for 0 (and for codes the decoder refuses).
    pub fn from_wire_code(code: u8) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.wire_code() == code)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.replace('-', "_");
        Strategy::ALL
            .into_iter()
            .find(|x| x.as_str() == norm)
            .ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|x| x.as_str()).collect();
                format!(
                    "unknown strategy \"{s}\" (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for d in DataType::ALL {
            assert_eq!(DataType::from_code(d.code()), Some(d));
            assert_eq!(d.as_str().parse::<DataType>(), Ok(d));
        }
        for p in Priority::ALL {
            assert_eq!(Priority::from_code(p.code()), Some(p));
            assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
        }
        assert_eq!(DataType::from_code(0), None);
        assert_eq!(Priority::from_code(5), None);
        assert!("urgent"
            .parse::<Priority>()
            .unwrap_err()
            .contains("ultra_high"));
    }

    #[test]
    fn priorities_order_most_urgent_first() {
        assert!(Priority::UltraHigh < Priority::High);
        assert!(Priority::Low < Priority::Background);
    }
}

//! Where a process learns its rank: explicit flags, torchrun, Slurm or Open MPI variables.
//! Pure: the environment comes in as a lookup function, so every launcher is unit-tested.

use super::{nodelist, BootstrapError};
use serde::Serialize;

/// torchrun's default store port, used when Slurm names no MASTER_PORT.
pub const DEFAULT_MASTER_PORT: u16 = 29_500;
/// Largest world a bootstrap accepts (the rendezvous store holds one record per rank).
pub const MAX_WORLD_SIZE: u32 = 4096;

/// Which source `--bootstrap` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The first that is present, in the order explicit, torchrun, slurm, mpi.
    Auto,
    Explicit,
    Torchrun,
    Slurm,
    Mpi,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "auto" => Mode::Auto,
            "explicit" => Mode::Explicit,
            "torchrun" => Mode::Torchrun,
            "slurm" => Mode::Slurm,
            "mpi" => Mode::Mpi,
            _ => {
                return Err(format!(
                    "`{s}`: expected auto, explicit, torchrun, slurm or mpi"
                ))
            }
        })
    }
}

/// What the command line (or the builder) gave; each overrides the environment.
#[derive(Debug, Clone, Default)]
pub struct Explicit {
    pub rank: Option<u32>,
    pub world_size: Option<u32>,
    pub local_rank: Option<u32>,
    /// The rendezvous store, `HOST:PORT`.
    pub master: Option<(String, u16)>,
}

/// A process's place in its job, and where the rendezvous store is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Launch {
    /// The source actually used (never `auto`).
    pub source: Mode,
    pub rank: u32,
    pub world_size: u32,
    pub local_rank: Option<u32>,
    pub local_world_size: Option<u32>,
    /// Slurm's node index of this task.
    pub node_index: Option<u32>,
    /// Slurm's expanded node list (empty elsewhere).
    pub hosts: Vec<String>,
    pub master_host: String,
    pub master_port: u16,
}

impl Launch {
    /// A launch stated by hand (no launcher): rank 0 of `world_size`, no store address, as a
    /// node that joins through etcd with `--world-size` (or Python's `world_size=`) gives.
    pub fn explicit(world_size: u32) -> Launch {
        Launch {
            source: Mode::Explicit,
            rank: 0,
            world_size,
            local_rank: None,
            local_world_size: None,
            node_index: None,
            hosts: Vec::new(),
            master_host: String::new(),
            master_port: 0,
        }
    }

    /// The node id a bootstrapped process takes.
    pub fn node_id(&self) -> String {
        format!("rank-{}", self.rank)
    }

    /// Reads `mode`'s source (for `auto`, the first present) through `env`.
    pub fn detect(
        mode: Mode,
        explicit: &Explicit,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Launch, BootstrapError> {
        let launch = match mode {
            Mode::Explicit => from_explicit(explicit, env)?,
            Mode::Torchrun => torchrun(explicit, env)?,
            Mode::Slurm => slurm(explicit, env)?,
            Mode::Mpi => mpi(explicit, env)?,
            Mode::Auto => {
                if explicit.rank.is_some() && explicit.world_size.is_some() {
                    from_explicit(explicit, env)?
                } else if env("RANK").is_some() {
                    torchrun(explicit, env)?
                } else if env("SLURM_PROCID").is_some() {
                    slurm(explicit, env)?
                } else if env("OMPI_COMM_WORLD_RANK").is_some() {
                    mpi(explicit, env)?
                } else {
                    return Err(BootstrapError::NoLauncher);
                }
            }
        };
        launch.check()
    }

    fn check(self) -> Result<Launch, BootstrapError> {
        let bad = |var: &str, value: u32, reason: String| BootstrapError::BadValue {
            var: var.to_owned(),
            value: value.to_string(),
            reason,
        };
        let size = self.world_size;
        if size == 0 || size > MAX_WORLD_SIZE {
            return Err(bad(
                "world size",
                size,
                format!("must be 1..={MAX_WORLD_SIZE}"),
            ));
        }
        if self.rank >= size {
            return Err(bad(
                "rank",
                self.rank,
                format!("must be below the world size {size}"),
            ));
        }
        Ok(self)
    }
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A number variable: absent is `None`, present but not a number is an error naming it.
fn number(env: Env<'_>, var: &str) -> Result<Option<u32>, BootstrapError> {
    let Some(v) = env(var) else { return Ok(None) };
    v.trim()
        .parse()
        .map(Some)
        .map_err(|_| BootstrapError::BadValue {
            var: var.to_owned(),
            value: v,
            reason: "not a non-negative integer".into(),
        })
}

fn required(env: Env<'_>, var: &str, launcher: &'static str) -> Result<u32, BootstrapError> {
    number(env, var)?.ok_or_else(|| BootstrapError::Missing {
        var: var.to_owned(),
        launcher,
    })
}

/// MASTER_ADDR / MASTER_PORT (the explicit `--master` first).
fn master(
    explicit: &Explicit,
    env: Env<'_>,
    launcher: &'static str,
    default_host: Option<&str>,
) -> Result<(String, u16), BootstrapError> {
    if let Some(m) = &explicit.master {
        return Ok(m.clone());
    }
    let host = match (env("MASTER_ADDR"), default_host) {
        (Some(h), _) if !h.trim().is_empty() => h.trim().to_owned(),
        (Some(h), _) => {
            return Err(BootstrapError::BadValue {
                var: "MASTER_ADDR".into(),
                value: h,
                reason: "empty".into(),
            })
        }
        (None, Some(h)) => h.to_owned(),
        (None, None) => {
            return Err(BootstrapError::Missing {
                var: "MASTER_ADDR".into(),
                launcher,
            })
        }
    };
    let port = match env("MASTER_PORT") {
        Some(p) => match p.trim().parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => {
                return Err(BootstrapError::BadValue {
                    var: "MASTER_PORT".into(),
                    value: p,
                    reason: "not a port (1..=65535)".into(),
                })
            }
        },
        None if default_host.is_some() => DEFAULT_MASTER_PORT,
        None => {
            return Err(BootstrapError::Missing {
                var: "MASTER_PORT".into(),
                launcher,
            })
        }
    };
    Ok((host, port))
}

fn from_explicit(explicit: &Explicit, env: Env<'_>) -> Result<Launch, BootstrapError> {
    let missing = |var: &str| BootstrapError::Missing {
        var: var.to_owned(),
        launcher: "explicit",
    };
    let (master_host, master_port) = master(explicit, env, "explicit", None)?;
    Ok(Launch {
        source: Mode::Explicit,
        rank: explicit.rank.ok_or_else(|| missing("--rank"))?,
        world_size: explicit.world_size.ok_or_else(|| missing("--world-size"))?,
        local_rank: explicit.local_rank,
        local_world_size: None,
        node_index: None,
        hosts: Vec::new(),
        master_host,
        master_port,
    })
}

fn torchrun(explicit: &Explicit, env: Env<'_>) -> Result<Launch, BootstrapError> {
    let (master_host, master_port) = master(explicit, env, "torchrun", None)?;
    Ok(Launch {
        source: Mode::Torchrun,
        rank: pick(explicit.rank, required(env, "RANK", "torchrun")?),
        world_size: pick(
            explicit.world_size,
            required(env, "WORLD_SIZE", "torchrun")?,
        ),
        local_rank: explicit.local_rank.or(number(env, "LOCAL_RANK")?),
        local_world_size: number(env, "LOCAL_WORLD_SIZE")?,
        node_index: None,
        hosts: Vec::new(),
        master_host,
        master_port,
    })
}

fn slurm(explicit: &Explicit, env: Env<'_>) -> Result<Launch, BootstrapError> {
    let hosts = match env("SLURM_JOB_NODELIST").or_else(|| env("SLURM_NODELIST")) {
        Some(list) => nodelist::expand("SLURM_JOB_NODELIST", &list)?,
        None => Vec::new(),
    };
    // Without MASTER_ADDR the store runs on the job's first host.
    let (master_host, master_port) =
        master(explicit, env, "slurm", hosts.first().map(|h| h.as_str()))?;
    let node_index = number(env, "SLURM_NODEID")?;
    if let (Some(i), false) = (node_index, hosts.is_empty()) {
        if i as usize >= hosts.len() {
            return Err(BootstrapError::BadValue {
                var: "SLURM_NODEID".into(),
                value: i.to_string(),
                reason: format!("SLURM_JOB_NODELIST names only {} hosts", hosts.len()),
            });
        }
    }
    Ok(Launch {
        source: Mode::Slurm,
        rank: pick(explicit.rank, required(env, "SLURM_PROCID", "slurm")?),
        world_size: pick(explicit.world_size, required(env, "SLURM_NTASKS", "slurm")?),
        local_rank: explicit.local_rank.or(number(env, "SLURM_LOCALID")?),
        local_world_size: number(env, "SLURM_NTASKS_PER_NODE")?,
        node_index,
        hosts,
        master_host,
        master_port,
    })
}

fn mpi(explicit: &Explicit, env: Env<'_>) -> Result<Launch, BootstrapError> {
    let (master_host, master_port) = master(explicit, env, "mpi", None)?;
    Ok(Launch {
        source: Mode::Mpi,
        rank: pick(explicit.rank, required(env, "OMPI_COMM_WORLD_RANK", "mpi")?),
        world_size: pick(
            explicit.world_size,
            required(env, "OMPI_COMM_WORLD_SIZE", "mpi")?,
        ),
        local_rank: explicit
            .local_rank
            .or(number(env, "OMPI_COMM_WORLD_LOCAL_RANK")?),
        local_world_size: number(env, "OMPI_COMM_WORLD_LOCAL_SIZE")?,
        node_index: None,
        hosts: Vec::new(),
        master_host,
        master_port,
    })
}

/// An explicit flag wins over the launcher's variable.
fn pick(flag: Option<u32>, var: u32) -> u32 {
    flag.unwrap_or(var)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn detect(mode: Mode, vars: &[(&str, &str)]) -> Result<Launch, BootstrapError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::detect(mode, &Explicit::default(), &|k| map.get(k).cloned())
    }

    const TORCH: &[(&str, &str)] = &[
        ("RANK", "3"),
        ("LOCAL_RANK", "1"),
        ("WORLD_SIZE", "4"),
        ("LOCAL_WORLD_SIZE", "2"),
        ("MASTER_ADDR", "10.0.0.1"),
        ("MASTER_PORT", "29400"),
    ];

    #[test]
    fn torchrun_reads_every_variable() {
        let l = detect(Mode::Auto, TORCH).unwrap();
        assert_eq!(l.source, Mode::Torchrun);
        assert_eq!(
            (l.rank, l.world_size, l.local_rank, l.local_world_size),
            (3, 4, Some(1), Some(2))
        );
        assert_eq!((l.master_host.as_str(), l.master_port), ("10.0.0.1", 29400));
        assert_eq!(l.node_id(), "rank-3");
    }

    #[test]
    fn slurm_expands_the_nodelist_and_defaults_the_master() {
        let l = detect(
            Mode::Auto,
            &[
                ("SLURM_PROCID", "5"),
                ("SLURM_LOCALID", "1"),
                ("SLURM_NTASKS", "8"),
                ("SLURM_NODEID", "2"),
                ("SLURM_JOB_NODELIST", "node[01-03,07]"),
            ],
        )
        .unwrap();
        assert_eq!(l.source, Mode::Slurm);
        assert_eq!(l.hosts, ["node01", "node02", "node03", "node07"]);
        assert_eq!(
            (l.rank, l.world_size, l.local_rank, l.node_index),
            (5, 8, Some(1), Some(2))
        );
        assert_eq!(
            (l.master_host.as_str(), l.master_port),
            ("node01", DEFAULT_MASTER_PORT)
        );
    }

    #[test]
    fn mpi_needs_a_master() {
        let vars = [
            ("OMPI_COMM_WORLD_RANK", "0"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "0"),
        ];
        let e = detect(Mode::Auto, &vars).unwrap_err();
        assert!(e.to_string().contains("MASTER_ADDR"), "{e}");
        let mut with = vars.to_vec();
        with.extend([("MASTER_ADDR", "h"), ("MASTER_PORT", "1")]);
        let l = detect(Mode::Auto, &with).unwrap();
        assert_eq!((l.source, l.rank, l.world_size), (Mode::Mpi, 0, 2));
    }

    #[test]
    fn order_is_explicit_torchrun_slurm_mpi() {
        let mut both = TORCH.to_vec();
        both.extend([
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
            ("OMPI_COMM_WORLD_RANK", "0"),
        ]);
        assert_eq!(detect(Mode::Auto, &both).unwrap().source, Mode::Torchrun);
        assert_eq!(detect(Mode::Slurm, &both).unwrap().source, Mode::Slurm);
        let map: HashMap<_, _> = both
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let explicit = Explicit {
            rank: Some(0),
            world_size: Some(1),
            ..Default::default()
        };
        let l = Launch::detect(Mode::Auto, &explicit, &|k| map.get(k).cloned()).unwrap();
        assert_eq!((l.source, l.rank, l.world_size), (Mode::Explicit, 0, 1));
        assert!(matches!(
            detect(Mode::Auto, &[]),
            Err(BootstrapError::NoLauncher)
        ));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[
                    ("RANK", "x"),
                    ("WORLD_SIZE", "2"),
                    ("MASTER_ADDR", "h"),
                    ("MASTER_PORT", "1"),
                ],
                "RANK",
            ),
            (
                &[
                    ("RANK", "0"),
                    ("WORLD_SIZE", "-2"),
                    ("MASTER_ADDR", "h"),
                    ("MASTER_PORT", "1"),
                ],
                "WORLD_SIZE",
            ),
            (
                &[
                    ("RANK", "0"),
                    ("WORLD_SIZE", "2"),
                    ("MASTER_ADDR", "h"),
                    ("MASTER_PORT", "70000"),
                ],
                "MASTER_PORT",
            ),
            (
                &[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1")],
                "MASTER_ADDR",
            ),
            (
                &[
                    ("RANK", "2"),
                    ("WORLD_SIZE", "2"),
                    ("MASTER_ADDR", "h"),
                    ("MASTER_PORT", "1"),
                ],
                "rank",
            ),
            (
                &[
                    ("RANK", "0"),
                    ("WORLD_SIZE", "2"),
                    ("LOCAL_RANK", "one"),
                    ("MASTER_ADDR", "h"),
                    ("MASTER_PORT", "1"),
                ],
                "LOCAL_RANK",
            ),
            (
                &[
                    ("SLURM_PROCID", "0"),
                    ("SLURM_NTASKS", "2"),
                    ("SLURM_JOB_NODELIST", "n[1-"),
                ],
                "SLURM_JOB_NODELIST",
            ),
            (
                &[
                    ("SLURM_PROCID", "0"),
                    ("SLURM_NTASKS", "2"),
                    ("SLURM_NODEID", "4"),
                    ("SLURM_JOB_NODELIST", "n[1-2]"),
                ],
                "SLURM_NODEID",
            ),
            (
                &[("SLURM_PROCID", "0"), ("SLURM_JOB_NODELIST", "n1")],
                "SLURM_NTASKS",
            ),
        ];
        for (vars, var) in cases {
            let e = detect(Mode::Auto, vars).unwrap_err();
            assert!(e.to_string().contains(var), "{var}: {e}");
        }
        assert!("bogus".parse::<Mode>().is_err());
        assert_eq!("slurm".parse::<Mode>(), Ok(Mode::Slurm));
    }
}

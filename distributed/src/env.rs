//! Where a rank is, as torchrun (or `--nproc`) says in the environment.

use std::time::Duration;

/// The torchrun variables of one rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankEnv {
    pub rank: usize,
    pub world_size: usize,
    /// The rank's index on its machine: its GPU is `cuda:LOCAL_RANK`.
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// `TORCHELASTIC_USE_AGENT_STORE=True`: torchrun's agent hosts the store, so rank 0 must
    /// not start its own.
    pub use_agent_store: bool,
    /// `TORCHELASTIC_RESTART_COUNT`: keys of a restarted attempt must not meet the old ones.
    pub restart_count: u64,
}

/// Seconds every collective, store access and rendezvous may take before it fails
/// (`TRICKS_DIST_TIMEOUT_S`; torch.distributed's default is 30 minutes).
pub const TIMEOUT_VAR: &str = "TRICKS_DIST_TIMEOUT_S";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

impl RankEnv {
    /// `Ok(None)` when `WORLD_SIZE` is unset (a plain single-process run); an error naming
    /// the variable when one is missing or malformed.
    pub fn from_env() -> Result<Option<RankEnv>, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<RankEnv>, String> {
        let Some(world_size) = get("WORLD_SIZE") else {
            return Ok(None);
        };
        let number = |name: &str, value: Option<String>| -> Result<u64, String> {
            let value = value.ok_or_else(|| {
                format!("WORLD_SIZE is set but {name} is not (run under torchrun or with --nproc)")
            })?;
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{name}={value:?} is not a whole number"))
        };
        let world_size = number("WORLD_SIZE", Some(world_size))? as usize;
        let rank = number("RANK", get("RANK"))? as usize;
        let local_rank = number("LOCAL_RANK", get("LOCAL_RANK").or(Some(rank.to_string())))?;
        if world_size == 0 || rank >= world_size {
            return Err(format!(
                "RANK={rank} must be below WORLD_SIZE={world_size} (and WORLD_SIZE at least 1)"
            ));
        }
        let master_port = number("MASTER_PORT", get("MASTER_PORT"))?;
        if master_port == 0 || master_port > u16::MAX as u64 {
            return Err(format!("MASTER_PORT={master_port} is not a TCP port"));
        }
        let master_addr = get("MASTER_ADDR").ok_or_else(|| {
            "WORLD_SIZE is set but MASTER_ADDR is not (run under torchrun or with --nproc)"
                .to_string()
        })?;
        Ok(Some(RankEnv {
            rank,
            world_size,
            local_rank: local_rank as usize,
            master_addr,
            master_port: master_port as u16,
            use_agent_store: get("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"),
            restart_count: match get("TORCHELASTIC_RESTART_COUNT") {
                Some(v) => number("TORCHELASTIC_RESTART_COUNT", Some(v))?,
                None => 0,
            },
        }))
    }
}

/// The timeout from `TRICKS_DIST_TIMEOUT_S`, else 30 minutes.
pub fn timeout_from_env() -> Result<Duration, String> {
    match std::env::var(TIMEOUT_VAR) {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(v) => parse_timeout(&v),
    }
}

/// A value of `TRICKS_DIST_TIMEOUT_S`.
pub fn parse_timeout(v: &str) -> Result<Duration, String> {
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 7.0 * 86400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{TIMEOUT_VAR}={v:?} must be a number of seconds above 0 (at most a week)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<RankEnv>, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RankEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn torchrun_variables_make_a_rank() {
        let e = env(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world_size, e.local_rank), (3, 4, 1));
        assert_eq!((e.master_addr.as_str(), e.master_port), ("10.0.0.1", 29500));
        assert!(e.use_agent_store);
        assert_eq!(e.restart_count, 2);
        assert_eq!(env(&[]).unwrap(), None);
    }

    #[test]
    fn bad_variables_are_named() {
        let e = env(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "1"),
        ]);
        assert!(e.unwrap_err().contains("RANK=2 must be below WORLD_SIZE=2"));
        let e = env(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "h")]);
        assert!(e.unwrap_err().contains("MASTER_PORT is not"));
        let e = env(&[("WORLD_SIZE", "x")]);
        assert!(e
            .unwrap_err()
            .contains("WORLD_SIZE=\"x\" is not a whole number"));
    }
}

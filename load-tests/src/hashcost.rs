//! The hasher's own cost on this machine: argon2id with authd's parameters, through the same crate
//! and the same calls (`hash_password` with a fresh salt), timed alone and with several threads at
//! once (the pool's real ceiling: memory bandwidth is shared).

use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Argon2Params {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Argon2Params {
    pub fn new(m_kib: u32, t: u32, p: u32) -> Self {
        Argon2Params { m_kib, t, p }
    }

    fn argon2(&self) -> Result<Argon2<'static>, String> {
        let params = Params::new(self.m_kib, self.t, self.p, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HashCost {
    pub params: Argon2Params,
    pub cores: usize,
    /// One hash at a time: median, min, max of `runs`, in milliseconds.
    pub single_ms: Vec<f64>,
    pub single_median_ms: f64,
    /// `threads` hashes at once (one per thread), each thread `runs` hashes.
    pub threads: usize,
    pub parallel_median_ms: f64,
    /// Hashes per second with `threads` threads busy: the pool's measured ceiling.
    pub parallel_per_s: f64,
    /// Cores other processes used while the hashes were timed (they would slow them down).
    #[serde(default)]
    pub other_cores: f64,
}

/// A PHC string for `password`, as authd would store it with these parameters.
pub fn phc_hash(params: Argon2Params, password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    params
        .argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn one_hash(argon2: &Argon2<'_>) -> Duration {
    let salt = SaltString::generate(&mut OsRng);
    let started = Instant::now();
    let hash = argon2
        .hash_password(b"a password of ordinary length", &salt)
        .expect("argon2 parameters were checked");
    let elapsed = started.elapsed();
    std::hint::black_box(hash);
    elapsed
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

pub fn measure(params: Argon2Params, runs: usize, threads: usize) -> Result<HashCost, String> {
    let argon2 = params.argon2()?;
    let runs = runs.max(1);
    let threads = threads.max(1);
    let machine_before = crate::procfs::machine_cpu_seconds();
    let own_before = crate::procfs::cpu_seconds(None);
    let started_all = Instant::now();
    // One warm-up: page faults of the first 64 MiB block, CPU frequency ramp.
    one_hash(&argon2);
    let mut single: Vec<f64> = (0..runs)
        .map(|_| one_hash(&argon2).as_secs_f64() * 1e3)
        .collect();
    let single_median_ms = median(&mut single);

    let started = Instant::now();
    let per_thread: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let argon2 = argon2.clone();
                s.spawn(move || {
                    (0..runs)
                        .map(|_| one_hash(&argon2).as_secs_f64() * 1e3)
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hash thread"))
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut all: Vec<f64> = per_thread.into_iter().flatten().collect();
    let parallel_per_s = all.len() as f64 / wall;
    let parallel_median_ms = median(&mut all);
    let other_cores = match (
        machine_before.zip(crate::procfs::machine_cpu_seconds()),
        own_before.zip(crate::procfs::cpu_seconds(None)),
    ) {
        (Some(((busy0, _), (busy1, _))), Some((own0, own1))) => {
            ((busy1 - busy0) - (own1 - own0)).max(0.0) / started_all.elapsed().as_secs_f64()
        }
        _ => 0.0,
    };
    Ok(HashCost {
        params,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        single_ms: single,
        single_median_ms,
        threads,
        parallel_median_ms,
        parallel_per_s,
        other_cores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_parameters_hash_and_time() {
        let params = Argon2Params {
            m_kib: 64,
            t: 1,
            p: 1,
        };
        let hash = phc_hash(params, "pw").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        let cost = measure(params, 3, 2).unwrap();
        assert_eq!(cost.single_ms.len(), 3);
        assert!(cost.parallel_per_s > 0.0);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}

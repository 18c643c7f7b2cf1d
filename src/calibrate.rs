//! `authd hash calibrate`: argon2id parameters for a target time on the machine at hand, as Ory
//! Kratos' `hashers argon2 calibrate` does. Memory is the costlier resource for an attacker's
//! hardware, so it grows first (doubling, then a bisection), one pass at a time; passes are added
//! only once the memory cap is reached. The search is written against a measuring function, so it
//! is tested with a cost model; the command measures real argon2id hashes.

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

/// One setting tried, and how long it took (the median of its samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trial {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub time: Duration,
}

/// The bounds of the search.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub target: Duration,
    pub parallelism: u32,
    /// Where memory starts (OWASP's floor for argon2id is 19 MiB).
    pub min_memory_kib: u32,
    pub max_memory_kib: u32,
    pub max_iterations: u32,
}

/// The costliest setting within the target (or the cheapest one, when even that is over it), and
/// every trial on the way, in order.
pub fn search(
    bounds: Bounds,
    mut measure: impl FnMut(u32, u32, u32) -> Result<Duration, String>,
) -> Result<(Trial, Vec<Trial>), String> {
    let mut trials = Vec::new();
    let mut run = |memory_kib: u32, iterations: u32| -> Result<Trial, String> {
        let time = measure(memory_kib, iterations, bounds.parallelism)?;
        let trial = Trial {
            memory_kib,
            iterations,
            parallelism: bounds.parallelism,
            time,
        };
        trials.push(trial);
        Ok(trial)
    };
    let within = |trial: &Trial| trial.time <= bounds.target;

    // Memory, one pass: double until over the target or at the cap.
    let mut best = run(bounds.min_memory_kib, 1)?;
    if !within(&best) {
        return Ok((best, trials));
    }
    let mut over = None;
    while over.is_none() && best.memory_kib < bounds.max_memory_kib {
        let next = run(
            best.memory_kib.saturating_mul(2).min(bounds.max_memory_kib),
            1,
        )?;
        if within(&next) {
            best = next;
        } else {
            over = Some(next.memory_kib);
        }
    }
    // Bisect between the last setting within the target and the first over it, to within 1/16.
    if let Some(mut high) = over {
        while high - best.memory_kib > (best.memory_kib / 16).max(1024) {
            let middle = best.memory_kib + (high - best.memory_kib) / 2;
            let trial = run(middle, 1)?;
            if within(&trial) {
                best = trial;
            } else {
                high = middle;
            }
        }
        return Ok((best, trials));
    }
    // At the memory cap with time to spare: more passes.
    while best.iterations < bounds.max_iterations {
        let trial = run(best.memory_kib, best.iterations + 1)?;
        if !within(&trial) {
            break;
        }
        best = trial;
    }
    Ok((best, trials))
}

/// The median time of `samples` argon2id hashes with these parameters, on this thread.
pub fn measure(
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    samples: usize,
) -> Result<Duration, String> {
    let params = Params::new(memory_kib, iterations, parallelism, None).map_err(|e| {
        format!("argon2 parameters m={memory_kib} t={iterations} p={parallelism}: {e}")
    })?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut times: Vec<Duration> = (0..samples.max(1))
        .map(|_| {
            let salt = SaltString::generate(&mut OsRng);
            let started = Instant::now();
            argon2
                .hash_password(b"calibration password", &salt)
                .map(|_| started.elapsed())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    times.sort();
    Ok(times[times.len() / 2])
}

/// Logins a second the hasher pool can verify at most: each takes one hash on one of `workers`
/// threads.
pub fn login_ceiling(workers: usize, hash_time: Duration) -> f64 {
    workers as f64 / hash_time.as_secs_f64().max(f64::EPSILON)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine where a hash costs 1 ms per MiB per pass.
    fn model(memory_kib: u32, iterations: u32, _: u32) -> Result<Duration, String> {
        Ok(Duration::from_micros(
            u64::from(memory_kib) * u64::from(iterations) * 1000 / 1024,
        ))
    }

    fn bounds(target_ms: u64, max_memory_kib: u32) -> Bounds {
        Bounds {
            target: Duration::from_millis(target_ms),
            parallelism: 1,
            min_memory_kib: 19 * 1024,
            max_memory_kib,
            max_iterations: 10,
        }
    }

    #[test]
    fn memory_grows_to_the_target_first() {
        let (chosen, trials) = search(bounds(250, 4 * 1024 * 1024), model).unwrap();
        assert_eq!(chosen.iterations, 1);
        assert!(chosen.time <= Duration::from_millis(250));
        // Within 1/16 of the memory the target allows (250 MiB here).
        assert!(chosen.memory_kib >= 250 * 1024 * 15 / 16, "{chosen:?}");
        assert!(
            trials.iter().any(|t| t.time > Duration::from_millis(250)),
            "it went past to know"
        );
    }

    #[test]
    fn passes_are_added_once_memory_is_capped() {
        let (chosen, _) = search(bounds(250, 64 * 1024), model).unwrap();
        assert_eq!(chosen.memory_kib, 64 * 1024);
        assert_eq!(chosen.iterations, 3, "64 ms a pass: three fit in 250 ms");
    }

    #[test]
    fn a_target_below_the_floor_answers_the_floor() {
        let (chosen, trials) = search(bounds(5, 1024 * 1024), model).unwrap();
        assert_eq!((chosen.memory_kib, chosen.iterations), (19 * 1024, 1));
        assert_eq!(trials.len(), 1);
    }

    #[test]
    fn the_ceiling_is_workers_over_the_hash_time() {
        assert_eq!(login_ceiling(2, Duration::from_millis(250)), 8.0);
    }
}

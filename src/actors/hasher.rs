//! The hasher pool: `workers` sync threads (an actix `SyncArbiter`) doing argon2id hashing and
//! argon2/bcrypt verification, so CPU-heavy work never runs on an HTTP worker or a tokio thread.
//!
//! A `SyncArbiter` mailbox is unbounded and gives no backpressure, so admission is bounded here: a
//! semaphore of `workers + queue_capacity` permits, taken without waiting before a job is sent and
//! held until its answer arrives. No permit means 503 `overloaded` at once. At most `workers`
//! hashes (and their `m_cost` of memory each) run at any moment, because there are only `workers`
//! threads.
//!
//! The queue is bounded in time too: a job that waited longer than `max_queue_wait_ms` for a thread
//! is answered 503 `overloaded` without being run. The threads run at a low priority by default,
//! so when cheap requests take every core hashing slows down, and without this a login could wait
//! as long as the starvation lasts (its caller has likely given up by then).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::HasherSettings;
use crate::error::AppError;
use crate::metrics;

/// Counters of the pool's work, for tests and metrics.
#[derive(Debug, Default)]
struct Counters {
    hashes: AtomicU64,
    verifications: AtomicU64,
    rejected: AtomicU64,
    /// Jobs answered without being run because they waited too long.
    expired: AtomicU64,
    /// Jobs a worker thread is running now.
    running: AtomicUsize,
}

impl Counters {
    /// Runs one job on the calling worker thread, counting it and recording its timings; `None`,
    /// without running it, when it waited longer than `max_wait` for the thread.
    fn run<T>(
        &self,
        operation: &'static str,
        queued_at: Instant,
        max_wait: Duration,
        job: impl FnOnce() -> T,
    ) -> Option<T> {
        let started = Instant::now();
        if started - queued_at > max_wait {
            self.expired.fetch_add(1, Ordering::Relaxed);
            metrics::hasher_expired(operation);
            return None;
        }
        self.running.fetch_add(1, Ordering::Relaxed);
        let answer = job();
        self.running.fetch_sub(1, Ordering::Relaxed);
        metrics::hasher_job(operation, started - queued_at, started.elapsed());
        Some(answer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherStats {
    /// Passwords hashed.
    pub hashes: u64,
    /// Verifications run, including those against the dummy hash for unknown accounts.
    pub verifications: u64,
    /// Jobs refused because the queue was full.
    pub rejected: u64,
    /// Jobs answered 503 without being run: they waited longer than `max_queue_wait_ms`.
    pub expired: u64,
    /// Jobs running or waiting now.
    pub in_flight: usize,
    /// Jobs admitted and waiting for a worker thread.
    pub queued: usize,
    /// Most jobs running or waiting at once (`workers + queue_capacity`).
    pub capacity: usize,
    pub workers: usize,
}

/// Hash a new password with the configured argon2id parameters. `None`: it waited too long.
#[derive(Message)]
#[rtype(result = "Option<Result<String, String>>")]
struct HashPassword {
    password: SecretString,
    queued_at: Instant,
}

/// The answer of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, actix::MessageResponse)]
pub struct Verification {
    pub matches: bool,
    /// The password matched a hash that is not argon2id with today's parameters (bcrypt from an
    /// import, or argon2 with older parameters): hash it again.
    pub needs_rehash: bool,
}

/// Verify a password against a stored hash, or against the dummy hash when there is no account,
/// so that an unknown email costs the same work as a wrong password. `None`: it waited too long.
#[derive(Message)]
#[rtype(result = "Option<Verification>")]
struct VerifyPassword {
    password: SecretString,
    hash: Option<String>,
    queued_at: Instant,
}

struct HashWorker {
    argon2: Argon2<'static>,
    params: Params,
    dummy_hash: Arc<str>,
    counters: Arc<Counters>,
    max_wait: Duration,
}

impl Actor for HashWorker {
    type Context = SyncContext<Self>;
}

impl Handler<HashPassword> for HashWorker {
    type Result = Option<Result<String, String>>;

    fn handle(&mut self, msg: HashPassword, _: &mut Self::Context) -> Self::Result {
        self.counters.run("hash", msg.queued_at, self.max_wait, || {
            self.counters.hashes.fetch_add(1, Ordering::Relaxed);
            hash_with(&self.argon2, msg.password.expose_secret())
        })
    }
}

impl Handler<VerifyPassword> for HashWorker {
    type Result = Option<Verification>;

    fn handle(&mut self, msg: VerifyPassword, _: &mut Self::Context) -> Self::Result {
        let password = msg.password.expose_secret().as_bytes();
        self.counters
            .run("verify", msg.queued_at, self.max_wait, || {
                self.counters.verifications.fetch_add(1, Ordering::Relaxed);
                match &msg.hash {
                    Some(hash) => verify_hash(password, hash, &self.params),
                    None => {
                        // Same work as a real verification; the answer is always no.
                        let _ = verify_hash(password, &self.dummy_hash, &self.params);
                        Verification {
                            matches: false,
                            needs_rehash: false,
                        }
                    }
                }
            })
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// The most a stored hash may ask of one verification (argon2 allocates its memory up front): an
/// imported hash past these would hold a worker for seconds or abort the process for want of
/// memory. Far above what any system recommends (OWASP: 19-46 MiB, bcrypt cost 10-12).
const MAX_ARGON2_MEMORY_KIB: u32 = 262_144;
const MAX_ARGON2_ITERATIONS: u32 = 10;
const MAX_ARGON2_LANES: u32 = 16;
const MAX_BCRYPT_COST: u32 = 15;
const TOO_COSTLY: &str =
    "asks more than authd verifies (argon2 m <= 262144 KiB, t <= 10, p <= 16; bcrypt cost <= 15)";

/// Whether verifying `hash` stays within the bounds above, or within `configured` (the
/// parameters authd hashes with, which an operator may set higher: its own hashes always
/// verify); unreadable hashes pass (they never match, at no cost).
fn within_bounds(hash: &str, configured: Option<&Params>) -> bool {
    if hash.starts_with("$2") {
        return hash
            .parse::<bcrypt::HashParts>()
            .map_or(true, |parts| parts.get_cost() <= MAX_BCRYPT_COST);
    }
    let ceiling =
        |bound: u32, own: fn(&Params) -> u32| configured.map_or(bound, |c| bound.max(own(c)));
    PasswordHash::new(hash)
        .ok()
        .and_then(|parsed| Params::try_from(&parsed).ok())
        .is_none_or(|p| {
            p.m_cost() <= ceiling(MAX_ARGON2_MEMORY_KIB, Params::m_cost)
                && p.t_cost() <= ceiling(MAX_ARGON2_ITERATIONS, Params::t_cost)
                && p.p_cost() <= ceiling(MAX_ARGON2_LANES, Params::p_cost)
        })
}

/// Verifies against a PHC argon2 string (its own parameters) or a bcrypt hash (`$2a$`, `$2b$`,
/// `$2y$`). An unreadable hash never matches, nor one past the bounds (refused at import; one
/// written to the store by other means is not run).
fn verify_hash(password: &[u8], hash: &str, current: &Params) -> Verification {
    if !within_bounds(hash, Some(current)) {
        tracing::warn!("a stored password hash asks too much to verify; refused unverified");
        return Verification {
            matches: false,
            needs_rehash: false,
        };
    }
    if hash.starts_with("$2") {
        let matches = bcrypt::verify(password, hash).unwrap_or(false);
        return Verification {
            matches,
            needs_rehash: matches,
        };
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return Verification {
            matches: false,
            needs_rehash: false,
        };
    };
    let matches = Argon2::default().verify_password(password, &parsed).is_ok();
    Verification {
        matches,
        needs_rehash: matches && !is_current(&parsed, current),
    }
}

/// Whether authd can verify a stored hash: bcrypt (`$2a$`, `$2b$`, `$2y$`) or an argon2 PHC
/// string (argon2id, argon2i or argon2d). Used to vet imported hashes before they are stored.
pub fn check_stored_hash(hash: &str) -> Result<(), &'static str> {
    if hash.starts_with("$2") {
        let supported = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
        return match (supported, hash.parse::<bcrypt::HashParts>()) {
            (true, Ok(_)) if !within_bounds(hash, None) => Err(TOO_COSTLY),
            (true, Ok(_)) => Ok(()),
            _ => Err("is not a valid bcrypt hash ($2a$, $2b$ or $2y$)"),
        };
    }
    let parsed =
        PasswordHash::new(hash).map_err(|_| "is neither a bcrypt hash nor an argon2 PHC string")?;
    let known = [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d]
        .iter()
        .any(|a| parsed.algorithm == a.ident());
    if !(known && parsed.hash.is_some() && Params::try_from(&parsed).is_ok()) {
        Err("is not a valid argon2 PHC string")
    } else if !within_bounds(hash, None) {
        Err(TOO_COSTLY)
    } else {
        Ok(())
    }
}

/// argon2id, version 0x13, and exactly today's memory, time and parallelism.
fn is_current(hash: &PasswordHash<'_>, current: &Params) -> bool {
    let same_params = Params::try_from(hash).is_ok_and(|p| {
        p.m_cost() == current.m_cost()
            && p.t_cost() == current.t_cost()
            && p.p_cost() == current.p_cost()
    });
    hash.algorithm == Algorithm::Argon2id.ident()
        && hash.version == Some(Version::V0x13.into())
        && same_params
}

fn params_from(settings: &HasherSettings) -> Result<Params, String> {
    Params::new(
        settings.argon2_memory_kib,
        settings.argon2_iterations,
        settings.argon2_parallelism,
        None,
    )
    .map_err(|e| format!("hasher: invalid argon2 parameters: {e}"))
}

/// The queue a pool of `workers` can empty within `max_wait` when one hash takes `hash_time`:
/// how many jobs may wait so that the last one still starts in time. At least one per worker, at
/// most 64 per worker (a hash far cheaper than a request would make it unbounded in practice).
fn queue_for_wait(workers: usize, hash_time: Duration, max_wait: Duration) -> usize {
    let per_worker = max_wait.as_secs_f64() / hash_time.as_secs_f64().max(1e-6);
    let waiting = (workers as f64 * per_worker).floor() as usize;
    waiting.saturating_sub(workers).clamp(workers, 64 * workers)
}

/// Names the calling thread `authd-hasher` (what `top -H` and /proc show), then lowers its
/// priority to `nice`.
fn prepare_hasher_thread(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the name is a NUL-terminated string that outlives the call; `prctl` copies it.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"authd-hasher".as_ptr(), 0, 0, 0) };
    }
    lower_thread_priority(nice);
}

/// Sets the calling thread's niceness (Linux: `setpriority` on a thread id acts on that thread
/// alone). Elsewhere it would renice the whole process, so it does nothing.
fn lower_thread_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system call with no pointers; `0` means the calling thread.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if result != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "hasher: cannot lower the thread priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(nice, "hasher.thread_nice is only applied on Linux");
}

fn argon2_from(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Handle to the pool; cheap to clone, shared by every HTTP worker.
#[derive(Clone)]
pub struct HasherPool {
    workers: Addr<HashWorker>,
    admission: Arc<Semaphore>,
    capacity: usize,
    worker_count: usize,
    counters: Arc<Counters>,
    retry_after: Duration,
}

/// A place in the pool, held from [`HasherPool::reserve`] until its one job has answered.
pub struct HashPermit {
    workers: Addr<HashWorker>,
    retry_after: Duration,
    _permit: OwnedSemaphorePermit,
}

impl HashPermit {
    /// Hashes a new password (already normalised) with argon2id.
    pub async fn hash(self, password: &str) -> Result<String, AppError> {
        let message = HashPassword {
            password: SecretString::from(password),
            queued_at: Instant::now(),
        };
        metrics::actor_message("hasher");
        let answer = self.workers.send(message).await?;
        self.ran(answer)?.map_err(AppError::Internal)
    }

    /// Verifies a password against a stored hash; `None` runs the dummy verification.
    pub async fn verify(
        self,
        password: &str,
        hash: Option<String>,
    ) -> Result<Verification, AppError> {
        let message = VerifyPassword {
            password: SecretString::from(password),
            hash,
            queued_at: Instant::now(),
        };
        metrics::actor_message("hasher");
        let answer = self.workers.send(message).await?;
        self.ran(answer)
    }

    /// A job's answer, or 503 `overloaded` when it waited too long to run.
    fn ran<T>(&self, answer: Option<T>) -> Result<T, AppError> {
        answer.ok_or(AppError::Overloaded {
            retry_after: self.retry_after,
        })
    }
}

impl HasherPool {
    /// Starts the worker threads. Needs a running actix `System`.
    pub fn start(settings: &HasherSettings) -> Result<Self, String> {
        let params = params_from(settings)?;
        let argon2 = argon2_from(&params);
        let worker_count = settings.effective_workers();
        // A throwaway password: nobody can know it, and it is hashed with today's parameters so a
        // dummy verification costs what a real one does. Timing it tells what a hash costs here.
        let throwaway = SaltString::generate(&mut OsRng);
        let started = Instant::now();
        let dummy_hash: Arc<str> = hash_with(&argon2, throwaway.as_str())?.into();
        let max_wait = Duration::from_millis(settings.max_queue_wait_ms);
        let queue = match settings.queue_capacity {
            // Planned for three quarters of the limit: under load a hash takes longer than the
            // one timed here, and the queue's last job should still start before it expires.
            0 => queue_for_wait(worker_count, started.elapsed(), max_wait.mul_f64(0.75)),
            configured => configured,
        };
        let capacity = worker_count + queue;
        let counters = Arc::new(Counters::default());
        let worker_counters = counters.clone();
        let nice = settings.thread_nice;
        // The factory runs on each worker thread as it starts.
        let workers = SyncArbiter::start(worker_count, move || {
            prepare_hasher_thread(nice);
            HashWorker {
                argon2: argon2.clone(),
                params: params.clone(),
                dummy_hash: dummy_hash.clone(),
                counters: worker_counters.clone(),
                max_wait,
            }
        });
        Ok(HasherPool {
            workers,
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
            worker_count,
            counters,
            retry_after: Duration::from_secs(settings.retry_after_seconds.max(1)),
        })
    }

    /// Takes a place in the pool without waiting, or answers 503 `overloaded` at once. A flow
    /// that will hash takes it before anything else it does (the account lookup included), so a
    /// request the pool refuses costs no database work.
    pub fn reserve(&self) -> Result<HashPermit, AppError> {
        let permit = self.admission.clone().try_acquire_owned().map_err(|_| {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            metrics::hasher_rejected();
            AppError::Overloaded {
                retry_after: self.retry_after,
            }
        })?;
        Ok(HashPermit {
            workers: self.workers.clone(),
            retry_after: self.retry_after,
            _permit: permit,
        })
    }

    /// Hashes a new password (already normalised) with argon2id.
    pub async fn hash(&self, password: &str) -> Result<String, AppError> {
        self.reserve()?.hash(password).await
    }

    /// Verifies a password against a stored hash; `None` runs the dummy verification.
    pub async fn verify(
        &self,
        password: &str,
        hash: Option<String>,
    ) -> Result<Verification, AppError> {
        self.reserve()?.verify(password, hash).await
    }

    pub fn stats(&self) -> HasherStats {
        let in_flight = self.capacity - self.admission.available_permits();
        HasherStats {
            hashes: self.counters.hashes.load(Ordering::Relaxed),
            verifications: self.counters.verifications.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            expired: self.counters.expired.load(Ordering::Relaxed),
            in_flight,
            queued: in_flight.saturating_sub(self.counters.running.load(Ordering::Relaxed)),
            capacity: self.capacity,
            workers: self.worker_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HasherSettings {
        HasherSettings {
            workers: 1,
            queue_capacity: 1,
            max_queue_wait_ms: 1500,
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            retry_after_seconds: 1,
            thread_nice: 0,
        }
    }

    fn current() -> Params {
        params_from(&cheap()).unwrap()
    }

    #[test]
    fn hashes_that_ask_too_much_are_refused_at_import_and_never_run() {
        let salt = "c2FsdHNhbHQ";
        let digest = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let costly = format!("$argon2id$v=19$m=50331648,t=1,p=1${salt}${digest}");
        assert_eq!(check_stored_hash(&costly), Err(TOO_COSTLY));
        let slow = format!("$argon2id$v=19$m=19456,t=500,p=1${salt}${digest}");
        assert_eq!(check_stored_hash(&slow), Err(TOO_COSTLY));
        let fine = format!("$argon2id$v=19$m=19456,t=2,p=1${salt}${digest}");
        assert_eq!(check_stored_hash(&fine), Ok(()));
        let bcrypt_slow = "$2b$20$abcdefghijklmnopqrstuu5p4xdUHNzpVh2yM5GS6kzYNqj7wDx2C";
        assert_eq!(check_stored_hash(bcrypt_slow), Err(TOO_COSTLY));
        // Stored by other means, it is not run: refused at once (this would allocate 48 GiB).
        let current = Params::new(1024, 1, 1, None).unwrap();
        let answer = verify_hash(b"anything", &costly, &current);
        assert!(!answer.matches && !answer.needs_rehash);
        // Parameters authd is configured with always verify, above the bounds too.
        let own = format!("$argon2id$v=19$m=524288,t=12,p=32${salt}${digest}");
        let configured = Params::new(524_288, 12, 32, None).unwrap();
        assert!(within_bounds(&own, Some(&configured)));
        assert!(!within_bounds(&own, None));
    }

    #[test]
    fn the_queue_is_what_the_workers_empty_within_the_wait() {
        let ms = Duration::from_millis;
        // 2 workers, 150 ms a hash, 1.5 s: 20 hashes, 18 of them waiting.
        assert_eq!(queue_for_wait(2, ms(150), ms(1500)), 18);
        // Slow hashes: still one waiting per worker.
        assert_eq!(queue_for_wait(2, ms(2000), ms(1500)), 2);
        // Very cheap ones: capped.
        assert_eq!(queue_for_wait(2, Duration::from_micros(10), ms(1500)), 128);
    }

    /// `password` checked against `hash` with today's parameters.
    fn verified(password: &str, hash: &str) -> Verification {
        verify_hash(password.as_bytes(), hash, &current())
    }

    fn verdict(matches: bool, needs_rehash: bool) -> Verification {
        Verification {
            matches,
            needs_rehash,
        }
    }

    #[test]
    fn argon2id_hashes_verify_and_carry_their_parameters() {
        let hash = hash_with(&argon2_from(&current()), "correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert_eq!(verified("correct horse", &hash), verdict(true, false));
        assert_eq!(verified("wrong horse", &hash), verdict(false, false));
    }

    #[test]
    fn hashes_with_other_parameters_or_variants_verify_and_ask_for_a_rehash() {
        let older = Params::new(32, 2, 1, None).unwrap();
        let hash = hash_with(&argon2_from(&older), "correct horse").unwrap();
        assert_eq!(verified("correct horse", &hash), verdict(true, true));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, current());
        let hash = hash_with(&argon2i, "correct horse").unwrap();
        assert_eq!(verified("correct horse", &hash), verdict(true, true));
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_a_rehash() {
        let hash = bcrypt::hash("legacy password", 4).unwrap();
        assert_eq!(verified("legacy password", &hash), verdict(true, true));
        assert_eq!(verified("other password", &hash), verdict(false, false));
    }

    #[test]
    fn stored_hashes_are_vetted() {
        let bcrypt_hash = bcrypt::hash("x", 4).unwrap();
        let argon2_hash = hash_with(&argon2_from(&current()), "x").unwrap();
        assert!(check_stored_hash(&bcrypt_hash).is_ok());
        assert!(check_stored_hash(&bcrypt_hash.replacen("$2b$", "$2y$", 1)).is_ok());
        assert!(check_stored_hash(&argon2_hash).is_ok());
        for bad in [
            "",
            "plain",
            "$2x$04$abc",
            "$2b$04$short",
            "$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
        ] {
            assert!(check_stored_hash(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unreadable_hashes_never_match() {
        for hash in ["", "$argon2id$garbage", "plaintext", "$2b$04$short"] {
            assert_eq!(
                verify_hash(b"x", hash, &current()),
                verdict(false, false),
                "{hash}"
            );
        }
    }

    #[actix_web::test]
    async fn the_pool_refuses_past_its_capacity_and_counts_its_work() {
        let pool = HasherPool::start(&cheap()).unwrap();
        let hash = pool.hash("password one").await.unwrap();
        assert!(
            pool.verify("password one", Some(hash))
                .await
                .unwrap()
                .matches
        );
        assert!(!pool.verify("password one", None).await.unwrap().matches);
        // Hold every permit, as queued jobs would: the next caller is refused at once.
        let held: Vec<_> = (0..pool.capacity)
            .map(|_| pool.reserve().unwrap())
            .collect();
        assert!(matches!(
            pool.verify("x", None).await,
            Err(AppError::Overloaded { .. })
        ));
        assert!(matches!(pool.reserve(), Err(AppError::Overloaded { .. })));
        drop(held);
        let stats = pool.stats();
        assert_eq!(
            (stats.hashes, stats.verifications, stats.rejected),
            (1, 2, 2)
        );
        assert_eq!(stats.in_flight, 0);
        assert_eq!(stats.capacity, 2);
    }

    #[actix_web::test]
    async fn a_job_that_waited_past_the_limit_is_answered_without_running() {
        let pool = HasherPool::start(&cheap()).unwrap();
        let stale = Instant::now() - Duration::from_millis(cheap().max_queue_wait_ms + 1);
        let verification = VerifyPassword {
            password: SecretString::from("x"),
            hash: None,
            queued_at: stale,
        };
        assert_eq!(pool.workers.send(verification).await.unwrap(), None);
        let hash = HashPassword {
            password: SecretString::from("x"),
            queued_at: stale,
        };
        assert_eq!(pool.workers.send(hash).await.unwrap(), None);
        let permit = pool.reserve().unwrap();
        assert!(matches!(
            permit.ran(None::<Verification>),
            Err(AppError::Overloaded { retry_after }) if retry_after == Duration::from_secs(1)
        ));
        drop(permit);
        // Neither ran; a fresh job still does.
        assert!(!pool.verify("x", None).await.unwrap().matches);
        let stats = pool.stats();
        assert_eq!(
            (stats.hashes, stats.verifications, stats.expired),
            (0, 1, 2)
        );
    }
}

//! authd as real processes (the `authd` binary, as operators run it) and a PostgreSQL of a test's
//! own: what the multi-node and crash tests stand on. Everything listens on loopback only, and
//! everything started here is killed and removed when its handle drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::helpers::{random_secret, redis_url, remove_redis_keys, Backend, TestDatabase};
use crate::smtp::free_port;

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("authd-{label}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What every node of one cluster shares: the database, the Redis prefix, the secrets.
pub struct ClusterEnv {
    pub database: TestDatabase,
    pub key_prefix: String,
    pub dir: TempDir,
    vars: Vec<(String, String)>,
}

impl ClusterEnv {
    /// A fresh PostgreSQL database (created by the first node) and Redis prefix, plus `extra`
    /// settings as `AUTHD__…` variables.
    pub fn new(extra: &[(&str, &str)]) -> Self {
        Self::on_database(TestDatabase::new(Backend::PostgresRedis), extra)
    }

    pub fn on_database(database: TestDatabase, extra: &[(&str, &str)]) -> Self {
        let key_prefix = format!("authd:test:{}:", Uuid::new_v4().simple());
        let dir = TempDir::new("cluster");
        let mut vars: Vec<(String, String)> = [
            ("AUTHD_ENV", "test".to_string()),
            (
                "AUTHD_CONFIG_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("config")
                    .display()
                    .to_string(),
            ),
            ("DATABASE_URL", database.url()),
            ("REDIS_URL", redis_url()),
            ("JWT_SECRET", random_secret()),
            ("AUTHD__TOKENS__REFRESH_SECRET", random_secret()),
            ("AUTHD__CACHE__KEY_PREFIX", key_prefix.clone()),
            ("AUTHD__SERVER__HOST", "127.0.0.1".to_string()),
            ("AUTHD__SERVER__WORKERS", "1".to_string()),
            ("AUTHD__HASHER__WORKERS", "1".to_string()),
            ("AUTHD__DATABASE__CREATE_IF_MISSING", "true".to_string()),
            ("AUTHD__DATABASE__POOL_SIZE", "4".to_string()),
            (
                "AUTHD__MAIL__FILE_DIR",
                dir.0.join("mail").display().to_string(),
            ),
            ("AUTHD__MAIL__POLL_INTERVAL_MS", "200".to_string()),
            ("AUTHD__RATE_LIMIT__AUTH_MAX", "100000".to_string()),
            ("AUTHD__RATE_LIMIT__GENERAL_MAX", "100000".to_string()),
            ("AUTHD__LOG__LEVEL", "warn".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ClusterEnv {
            database,
            key_prefix,
            dir,
            vars,
        }
    }

    /// Starts one more node and waits until it is ready.
    pub fn start_node(&self, name: &str) -> Node {
        Node::start(name, &self.vars, &self.dir.0)
    }

    /// Starts `count` nodes, one after the other (the first creates and migrates the database).
    pub fn start_nodes(&self, count: usize) -> Vec<Node> {
        (0..count)
            .map(|i| self.start_node(&format!("node-{i}")))
            .collect()
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.dir.0.join("mail")
    }
}

impl Drop for ClusterEnv {
    fn drop(&mut self) {
        self.database.remove();
        remove_redis_keys(&self.key_prefix);
    }
}

/// One `authd serve` process.
pub struct Node {
    pub name: String,
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(name: &str, vars: &[(String, String)], dir: &Path) -> Node {
        let port = free_port();
        let log = dir.join(format!("{name}-{port}.log"));
        let output = std::fs::File::create(&log).expect("node log");
        let child = Command::new(env!("CARGO_BIN_EXE_authd"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env("PORT", port.to_string())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log handle"))
            .stderr(output)
            .spawn()
            .expect("start authd");
        let mut node = Node {
            name: name.to_string(),
            port,
            child,
            log,
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited at start ({status}):\n{}", self.name, self.log());
            }
            if ready(self.port) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} not ready in 60 s:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (`KILL`, `TERM`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.1 GET of `/health/ready`, without an async runtime (used while starting).
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = [0u8; 16];
    stream.read(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200")
}

/// A PostgreSQL server of a test's own (initdb + pg_ctl in a temporary directory, a spare
/// loopback port), so stopping it disturbs no other test.
pub struct OwnPostgres {
    pub port: u16,
    data: PathBuf,
    _dir: TempDir,
}

fn pg_bin(tool: &str) -> PathBuf {
    for dir in ["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin"] {
        let path = Path::new(dir).join(tool);
        if path.exists() {
            return path;
        }
    }
    PathBuf::from(tool)
}

/// PostgreSQL refuses to run as root: as root, its tools run as the `postgres` user.
fn pg_command(tool: &str) -> Command {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if is_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
        command
    } else {
        Command::new(pg_bin(tool))
    }
}

impl OwnPostgres {
    pub fn start() -> Self {
        let dir = TempDir::new("pg");
        let data = dir.0.join("data");
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir.0)
            .status();
        let status = pg_command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        let postgres = OwnPostgres {
            port: free_port(),
            data,
            _dir: dir,
        };
        postgres.run_ctl("start");
        postgres
    }

    fn run_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off",
            self.port
        );
        let mut command = pg_command("pg_ctl");
        command
            .args(["-D"])
            .arg(&self.data)
            .args(["-w", "-t", "30"]);
        match action {
            "start" => command
                .args(["-o", &options, "-l"])
                .arg(self.data.join("log")),
            _ => command.args(["-m", "fast"]),
        };
        let status = command
            .arg(action)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pg_ctl");
        assert!(status.success(), "pg_ctl {action} failed");
    }

    pub fn stop(&self) {
        self.run_ctl("stop");
    }

    pub fn restart(&self) {
        self.run_ctl("start");
    }

    /// A database on this server, created by authd at start (`create_if_missing`).
    pub fn database(&self) -> TestDatabase {
        let name = format!("authd_test_{}", Uuid::new_v4().simple());
        TestDatabase::Postgres {
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
            name,
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A client for nodes: JSON in, status and JSON out; the refresh token travels in the body.
pub struct NodeClient {
    pub http: reqwest::Client,
}

/// Tokens as a mobile client holds them.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl NodeClient {
    pub fn new() -> Self {
        NodeClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    pub async fn post(
        &self,
        url: String,
        body: serde_json::Value,
    ) -> Result<(u16, serde_json::Value), reqwest::Error> {
        let response = self.http.post(url).json(&body).send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }

    pub async fn signup(&self, node: &Node, email: &str) -> Tokens {
        let (status, body) = self
            .post(
                node.url("/auth/signup"),
                serde_json::json!({
                    "email": email,
                    "password": crate::helpers::PASSWORD,
                    "tokenTransport": "body",
                }),
            )
            .await
            .expect("signup");
        assert_eq!(status, 201, "{body}");
        tokens(&body)
    }

    /// POST /auth/refresh; the new tokens on 200.
    pub async fn refresh(
        &self,
        node: &Node,
        refresh: &str,
    ) -> Result<(u16, serde_json::Value), reqwest::Error> {
        self.post(
            node.url("/auth/refresh"),
            serde_json::json!({ "refreshToken": refresh, "tokenTransport": "body" }),
        )
        .await
    }

    pub async fn me(&self, node: &Node, access: &str) -> u16 {
        self.http
            .get(node.url("/me"))
            .bearer_auth(access)
            .send()
            .await
            .expect("GET /me")
            .status()
            .as_u16()
    }
}

pub fn tokens(body: &serde_json::Value) -> Tokens {
    Tokens {
        access: body["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_string(),
        refresh: body["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_string(),
    }
}

/// The rotation invariants, checked in the database: every session has exactly one current
/// refresh token (its generation), every older one is retired, none is ahead; every user row is
/// whole.
pub async fn assert_no_half_written_state(database_url: &str) {
    let client = crate::helpers::postgres_client(database_url).await;
    let checks = [
        (
            "sessions without a token at their generation",
            "SELECT count(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t \
             WHERE t.session_id = s.id AND t.generation = s.generation)",
        ),
        (
            "current tokens marked rotated",
            "SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.generation = s.generation AND t.rotated_at IS NOT NULL",
        ),
        (
            "older tokens never retired",
            "SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.generation < s.generation AND t.rotated_at IS NULL",
        ),
        (
            "tokens ahead of their session",
            "SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.generation > s.generation",
        ),
        (
            "users without a password hash",
            "SELECT count(*) FROM users WHERE password_hash = ''",
        ),
        (
            "unverified users without their verification mail",
            "SELECT count(*) FROM users u WHERE NOT u.email_verified AND NOT EXISTS \
             (SELECT 1 FROM one_time_tokens t WHERE t.user_id = u.id AND t.kind = 'email_verification')",
        ),
    ];
    for (what, sql) in checks {
        let count: i64 = client.query_one(sql, &[]).await.expect(what).get(0);
        assert_eq!(count, 0, "{what}");
    }
}

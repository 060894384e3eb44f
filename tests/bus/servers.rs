//! Real `redis-server` and `nats-server` processes for the bus tests: each
//! on a free port of 127.0.0.1 with its files in a temporary directory,
//! killed (and the directory removed) on drop. `.ci/run` installs the
//! Debian packages `redis-server` and `nats-server` when they are missing.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Redis,
    /// A Redis Cluster node (`cluster-enabled yes`).
    RedisClusterNode,
    Nats,
}

/// A bus server process.
pub struct External {
    pub kind: Kind,
    pub port: u16,
    /// Redis Cluster's node-to-node port.
    cluster_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary(kind: Kind) -> &'static str {
    match kind {
        Kind::Redis | Kind::RedisClusterNode => "redis-server",
        Kind::Nats => "nats-server",
    }
}

/// Where the Debian packages put the binaries (nats-server in /usr/sbin,
/// not always on a user's PATH).
fn find(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ]) {
        let path = PathBuf::from(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: the bus tests need real servers \
         (Debian: apt-get install redis-server nats-server; .ci/run does it)"
    )
}

impl External {
    /// A server of `kind`, not started yet (its port reserved by nobody:
    /// connections to it are refused until [`start`](Self::start)).
    pub fn stopped(kind: Kind) -> External {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "uws-bus-{}-{}-{:?}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            kind
        ));
        std::fs::create_dir_all(&dir).unwrap();
        External {
            kind,
            port: free_port(),
            cluster_port: free_port(),
            dir,
            child: None,
        }
    }

    /// A running server of `kind`.
    pub fn start_new(kind: Kind) -> External {
        let mut e = External::stopped(kind);
        e.start();
        e
    }

    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis | Kind::RedisClusterNode => format!("redis://127.0.0.1:{}", self.port),
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// Starts (or starts again, on the same port) and waits until it
    /// accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let mut cmd = Command::new(find(binary(self.kind)));
        match self.kind {
            Kind::Redis | Kind::RedisClusterNode => {
                cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                    .args(["--appendonly", "no", "--protected-mode", "no"])
                    .args(["--daemonize", "no", "--loglevel", "warning"])
                    .arg("--dir")
                    .arg(&self.dir)
                    .arg("--logfile")
                    .arg(self.dir.join("redis.log"));
                if self.kind == Kind::RedisClusterNode {
                    cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                        .args(["--cluster-port", &self.cluster_port.to_string()])
                        .arg("--cluster-config-file")
                        .arg(self.dir.join("nodes.conf"));
                }
            }
            Kind::Nats => {
                cmd.args(["-a", "127.0.0.1", "-p", &port])
                    .arg("-l")
                    .arg(self.dir.join("nats.log"));
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary(self.kind)));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited with {status} (log in {})",
                    binary(self.kind),
                    self.dir.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start",
                binary(self.kind)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([signal, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid}");
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Runs `redis-cli` against this server; returns its output.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args, None)
    }
}

/// Runs `redis-cli -p PORT ARGS` (with `stdin` as the last argument, `-x`);
/// returns its output.
pub fn redis_cli(port: u16, args: &[&str], stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut cmd = Command::new(find("redis-cli"));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if stdin.is_some() {
        cmd.arg("-x");
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

impl Drop for External {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three primaries (no replicas), formed with
/// `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<External>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<External> = (0..3)
            .map(|_| External::start_new(Kind::RedisClusterNode))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = redis_cli(nodes[0].port, &args, None);
        assert!(out.contains("[OK]"), "cluster create: {out}");
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &nodes {
            while !n
                .redis_cli(&["cluster", "info"])
                .contains("cluster_state:ok")
            {
                assert!(Instant::now() < deadline, "the cluster did not form");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }
}

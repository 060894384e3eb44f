//! Scenarios that can end the process (an abort, a crash, a hang) run in a
//! child: this test binary again, with `UWS_CHILD=<test name>`, and the
//! parent checks how it ended.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a child run ended.
#[derive(Debug)]
pub enum Ended {
    /// Exited with this code (None: killed by a signal), and its output.
    Exited(Option<i32>, String),
    /// Still running after the timeout (killed then), and its output.
    Hung(String),
}

/// Whether this process is the child running `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var("UWS_CHILD").is_ok_and(|v| v == name)
}

/// Runs test `name` of this binary in a child process (under `ulimit -n
/// -Sn fds` when given) and waits up to `timeout`.
pub fn child(name: &str, timeout: Duration, fds: Option<u32>) -> Ended {
    let exe = std::env::current_exe().unwrap();
    let args = ["--exact", name, "--nocapture", "--test-threads=1"];
    let mut command = match fds {
        None => {
            let mut c = Command::new(&exe);
            c.args(args);
            c
        }
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -Sn {n} && exec \"$0\" \"$@\""))
                .arg(&exe)
                .args(args);
            c
        }
    };
    let mut c = command
        .env("UWS_CHILD", name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = |c: &mut std::process::Child| {
        let mut out = String::new();
        let _ = c.stdout.take().unwrap().read_to_string(&mut out);
        let _ = c.stderr.take().unwrap().read_to_string(&mut out);
        out
    };
    let start = Instant::now();
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            return Ended::Exited(status.code(), output(&mut c));
        }
        if start.elapsed() > timeout {
            let _ = c.kill();
            let _ = c.wait();
            return Ended::Hung(output(&mut c));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `name` in a child, which must pass (exit 0) within `timeout`.
pub fn child_must_pass(name: &str, timeout: Duration, fds: Option<u32>) {
    match child(name, timeout, fds) {
        Ended::Exited(Some(0), _) => {}
        other => panic!("the scenario did not end cleanly: {other:?}"),
    }
}

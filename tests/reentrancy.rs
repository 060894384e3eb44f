//! Randomized re-entrancy: from every place user code runs, a generator
//! seeded per run picks actions, while raw clients drive the server with
//! random HTTP and WebSocket traffic from the same seed.
//!
//! Places (`Place`): `fetch`, `open`, `message`, `close`, `drain`, `ping`,
//! `pong`, `subscription`, `error`; timers (`set_timeout`,
//! `set_interval`); handle jobs (`ServerHandle::defer`,
//! `ClientHandle::defer`); `PendingRequest::on_body` callbacks; body
//! wakers (`PendingRequest::body()` polled with a `Waker` of ours, woken
//! by the crate); stream producers (`PendingRequest::stream`);
//! `with_socket` closures; client events (`uws::connect` on a thread of
//! its own and on the server's, `Server::connect`); the `Drop` of socket
//! data, client data, closures, wakers, the handlers; and an "executor"
//! thread off the loop that holds pending requests.
//!
//! Actions (`Action`), each meaning what it can where it runs (a socket's
//! own `ws` in its handlers, the `Server` where one is given, the
//! `ServerHandle` and thread-locals elsewhere): stop, stop now, drop the
//! App (kept in a thread-local of the server's thread), close or terminate
//! this socket or another (by id), send, publish, subscribe, unsubscribe,
//! `defer_request`, answer a pending request (respond, stream, upgrade,
//! `on_body`, drop it, poll it), upgrade, set or clear a timer, connect a
//! client, panic, queue a job, poll a body, wake or drop a waker we kept,
//! `with_socket` on another socket (and act inside), nothing. A place runs
//! one to three of them; a `Drop` that panics is a chosen panic at a drop
//! place. Each seed draws its own weights, so seeds differ in character
//! (some stop early, some never; some panic a lot, some never).
//!
//! Each seed runs in a child process (this test binary again, with
//! `UWS_REENTRANCY_CHILD=<seed>`) with a time bound. The child checks what
//! it can see itself and exits 0, 3 (an invariant failed: `VIOLATION`
//! lines) or 4 (a thread did not end: `HANG`):
//! - every value of each kind made is dropped exactly once (socket data,
//!   client data, closures, wakers, handlers; a second drop of one value
//!   is noticed), so the App was freed (its handler dropped);
//! - no panic but the chosen ones (a panic that cannot unwind is not);
//! - `upgrade` refuses a request `defer_request` took, and the converse;
//! - no pending request left when the loop ends (each was answered or
//!   aborted), no HTTP connection answered more often than it asked;
//! - the server's loop, the client's loop and every thread end.
//!
//! The parent fails the seed on any other exit, on a signal (an abort, a
//! crash) and at its time bound (a hang). Nothing here times anything.
//!
//! ```text
//! cargo test --release --test reentrancy                 # the fixed seeds
//! UWS_REENTRANCY_SEED=17 cargo test --release --test reentrancy -- --nocapture
//!                                                        # one seed, its whole output
//! UWS_REENTRANCY_SEEDS=500 cargo test --release --test reentrancy
//!                                                        # the fixed seeds and 500 more
//! UWS_REENTRANCY_VALGRIND=1 cargo test --release --test reentrancy
//!                                                        # a few seeds under memcheck
//! ```
//!
//! A failing seed prints itself (with the child's last actions, `T thread
//! place action`); one that found a bug becomes a named regression test
//! below. The threads make a seed's run vary a little from one run to the
//! next; a changed generator maps seeds to other runs.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic::catch_unwind;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Wake, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::raw::masked_frame;
use uws::*;

/// The name of the test that runs the seeds (children re-enter it).
const MAIN_TEST: &str = "seeded_actions_from_every_place_user_code_runs_keep_the_invariants";

/// Seeds run by every `cargo test --release --test reentrancy`.
const FIXED_SEEDS: std::ops::RangeInclusive<u64> = 1..=32;

/// Seeds run under valgrind (`UWS_REENTRANCY_VALGRIND=1`) without
/// `UWS_REENTRANCY_SEED`/`UWS_REENTRANCY_SEEDS`.
const VALGRIND_SEEDS: usize = 4;

/// The marker of the panics the generator chooses.
const CHOSEN: &str = "reentrancy: chosen panic";

// ------------------------------------------------------------------------
// The parent: runs seeds in child processes and judges how they ended.

/// The test: every seed's child ends cleanly.
#[test]
fn seeded_actions_from_every_place_user_code_runs_keep_the_invariants() {
    if let Some(seed) = env_u64("UWS_REENTRANCY_CHILD") {
        child(seed);
    }
    let valgrind = std::env::var_os("UWS_REENTRANCY_VALGRIND").is_some();
    let (seeds, verbose) = match env_u64("UWS_REENTRANCY_SEED") {
        Some(seed) => (vec![seed], true),
        None => {
            let mut seeds: Vec<u64> = FIXED_SEEDS.collect();
            if valgrind {
                seeds.truncate(VALGRIND_SEEDS);
            }
            if let Some(n) = env_u64("UWS_REENTRANCY_SEEDS") {
                let base = random_base();
                println!("UWS_REENTRANCY_SEEDS={n}: {n} more seeds from base {base}");
                seeds.extend((0..n).map(|i| base.wrapping_add(i)));
            }
            (seeds, false)
        }
    };
    let failures = run_seeds(&seeds, valgrind, verbose);
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed: {:?}",
        failures.len(),
        seeds.len(),
        failures
    );
}

/// Runs one seed (a named regression test) in a child; panics with how it
/// ended unless it passed.
fn seed_passes(seed: u64) {
    if std::env::var_os("UWS_REENTRANCY_CHILD").is_some() {
        return; // Only the main test serves as a child.
    }
    let failures = run_seeds(&[seed], false, true);
    assert!(failures.is_empty(), "seed {seed} failed");
}

// Seeds that found bugs, kept as regression tests. Each comment says what
// the seed's run did before the fix (issue 19); a changed generator maps
// the seed elsewhere (then pick again with `UWS_REENTRANCY_SEEDS`).

/// Before the gate: a body waker polled the body again inside `wake`
/// (woken by `on_data` under the body's lock): the server's thread
/// deadlocked (3 runs of 3 hung; gdb: `deliver` -> `wake` -> `poll` ->
/// `lock_contended`).
#[test]
fn a_body_waker_that_polls_again_inside_wake() {
    seed_passes(9);
}

/// Before the gate: a body waker panicked in `wake` inside `on_data`:
/// "panic in a function that cannot unwind", abort (3 runs of 3).
#[test]
fn a_body_waker_that_panics_inside_wake() {
    seed_passes(60);
}

/// Before the gate: the crate dropped a body waker it had just woken
/// inside `on_data`, and its destructor panicked: abort (3 runs of 3).
#[test]
fn a_body_waker_whose_drop_panics_after_it_was_woken() {
    seed_passes(49);
}

/// Before the gate: `upgrade` after `defer_request` returned true, and
/// the socket data it then dropped in `on_http` panicked: abort (3 runs
/// of 3).
#[test]
fn socket_data_that_panics_when_an_upgrade_after_a_defer_drops_it() {
    seed_passes(39);
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
    )
}

/// A base for extra seeds: different on every run, printed.
fn random_base() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut r = Rng::new(nanos ^ u64::from(std::process::id()), 0);
    r.next() >> 16
}

/// How a child ended.
enum Outcome {
    Passed,
    /// Exited with this code (3: an invariant, 4: a thread did not end).
    Exited(i32),
    /// Killed by this signal (an abort, a segfault).
    Signal(i32),
    /// Still running at the time bound.
    Hung,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Passed => write!(f, "passed"),
            Outcome::Exited(3) => write!(f, "an invariant failed (exit 3)"),
            Outcome::Exited(4) => write!(f, "a thread did not end (exit 4)"),
            Outcome::Exited(99) => write!(f, "valgrind found errors (exit 99)"),
            Outcome::Exited(code) => write!(f, "exited with {code}"),
            Outcome::Signal(6) => write!(f, "aborted (SIGABRT)"),
            Outcome::Signal(11) => write!(f, "crashed (SIGSEGV)"),
            Outcome::Signal(signal) => write!(f, "killed by signal {signal}"),
            Outcome::Hung => write!(f, "hung (killed at the time bound)"),
        }
    }
}

/// Runs `seeds` two at a time; returns the failures (seed and outcome).
fn run_seeds(seeds: &[u64], valgrind: bool, verbose: bool) -> Vec<(u64, String)> {
    let queue = Mutex::new(seeds.to_vec());
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some(seed) = ({
                    let mut q = queue.lock().unwrap();
                    (!q.is_empty()).then(|| q.remove(0))
                }) else {
                    return;
                };
                let t = Instant::now();
                let (outcome, output) = run_child(seed, valgrind);
                let stats = output
                    .lines()
                    .rfind(|l| l.starts_with("stats:"))
                    .unwrap_or("stats: none")
                    .to_string();
                println!(
                    "seed {seed}: {outcome} in {:.1} s; {stats}",
                    t.elapsed().as_secs_f64()
                );
                if verbose {
                    println!("---- seed {seed} output ----\n{output}\n---- end ----");
                }
                if !matches!(outcome, Outcome::Passed) {
                    // The worker's actions are many and seldom the story.
                    let lines: Vec<&str> = output
                        .lines()
                        .filter(|l| !l.starts_with("T worker"))
                        .collect();
                    let tail = lines[lines.len().saturating_sub(50)..].join("\n");
                    let important: Vec<&str> = output
                        .lines()
                        .filter(|l| {
                            l.starts_with("VIOLATION")
                                || l.starts_with("HANG")
                                || l.starts_with("unexpected panic")
                                || l.contains("==ERROR")
                                || l.contains("Invalid")
                        })
                        .take(20)
                        .collect();
                    println!(
                        "seed {seed} FAILED: {outcome}\n  reproduce: UWS_REENTRANCY_SEED={seed} \
                         cargo test --release --test reentrancy -- --nocapture\n\
                         {}\n  last lines:\n{tail}",
                        important.join("\n")
                    );
                    failures.lock().unwrap().push((seed, outcome.to_string()));
                }
            });
        }
    });
    println!(
        "{} seeds in {:.1} s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    failures
}

/// Runs `seed` in a child process and waits for it, bounded.
fn run_child(seed: u64, valgrind: bool) -> (Outcome, String) {
    let exe = std::env::current_exe().unwrap();
    let mut command = if valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "--error-exitcode=99",
            "--leak-check=no",
            "--quiet",
            "--trace-children=no",
        ])
        .arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    command
        .args(["--exact", MAIN_TEST, "--nocapture", "--test-threads=1"])
        .env("UWS_REENTRANCY_CHILD", seed.to_string())
        .env_remove("UWS_REENTRANCY_SEED")
        .env_remove("UWS_REENTRANCY_SEEDS")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if valgrind {
        command.env("UWS_REENTRANCY_SLOW", "1");
    }
    let mut child = command.spawn().expect("start the child");
    let readers = [
        read_in_thread(child.stdout.take().unwrap()),
        read_in_thread(child.stderr.take().unwrap()),
    ];
    let bound = if valgrind {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(60)
    };
    let deadline = Instant::now() + bound;
    let outcome = loop {
        if let Some(status) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            break match (status.code(), status.signal()) {
                (Some(0), _) => Outcome::Passed,
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(signal)) => Outcome::Signal(signal),
                (None, None) => Outcome::Exited(-1),
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break Outcome::Hung;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    for r in readers {
        output.push_str(&r.join().unwrap_or_default());
    }
    (outcome, output)
}

fn read_in_thread(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// ------------------------------------------------------------------------
// The generator.

/// splitmix64: tiny, good enough, and the same everywhere.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

thread_local! {
    /// This thread's generator (each thread has its own stream of the seed).
    static RNG: RefCell<Rng> = const { RefCell::new(Rng(0)) };
    /// How deep in nested actions this thread is.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Whether this thread runs a loop (a client may be connected here).
    static LOOP: Cell<bool> = const { Cell::new(false) };
    /// The pending request whose waker is running on this thread.
    static WAKING: RefCell<Option<Arc<Pend>>> = const { RefCell::new(None) };
}

fn seed_thread(stream: u64) {
    RNG.with(|r| *r.borrow_mut() = Rng::new(config().seed, stream));
}

fn rand(n: u64) -> u64 {
    RNG.try_with(|r| r.borrow_mut().below(n)).unwrap_or(0)
}

/// What user code does at a place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Nothing,
    Stop,
    StopNow,
    DropApp,
    /// Close this socket (elsewhere: another one).
    Close,
    /// Terminate this socket (elsewhere: another one).
    Terminate,
    CloseOther,
    TerminateOther,
    Send,
    Publish,
    Subscribe,
    Unsubscribe,
    /// `Server::defer_request` (in `fetch`).
    DeferRequest,
    /// Answer a pending request: respond, stream, upgrade, `on_body`, drop.
    Respond,
    /// `Server::upgrade` in `fetch`, `PendingRequest::upgrade` elsewhere.
    Upgrade,
    SetTimeout,
    SetInterval,
    ClearTimer,
    Connect,
    Panic,
    /// `ServerHandle::defer` / `ClientHandle::defer`.
    Job,
    PollBody,
    /// Wake (or drop) a body waker we kept.
    WakeBody,
    /// `with_socket` on another socket, and an action inside.
    OnSocket,
}

const ACTIONS: [Action; 24] = [
    Action::Nothing,
    Action::Stop,
    Action::StopNow,
    Action::DropApp,
    Action::Close,
    Action::Terminate,
    Action::CloseOther,
    Action::TerminateOther,
    Action::Send,
    Action::Publish,
    Action::Subscribe,
    Action::Unsubscribe,
    Action::DeferRequest,
    Action::Respond,
    Action::Upgrade,
    Action::SetTimeout,
    Action::SetInterval,
    Action::ClearTimer,
    Action::Connect,
    Action::Panic,
    Action::Job,
    Action::PollBody,
    Action::WakeBody,
    Action::OnSocket,
];

/// Where user code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Fetch,
    Open,
    Message,
    Close,
    Drain,
    Ping,
    Pong,
    Subscription,
    Error,
    Timeout,
    Interval,
    Job,
    OnBody,
    Producer,
    Wake,
    WithSocket,
    DataDrop,
    ClosureDrop,
    WakerDrop,
    PendDrop,
    HandlerDrop,
    ClientOpen,
    ClientMessage,
    ClientClose,
    ClientDrain,
    ClientPing,
    ClientPong,
    ClientError,
    ClientJob,
    ClientDataDrop,
    ClientHandlerDrop,
    /// An "executor" thread off the loop that holds pending requests.
    Worker,
}

/// The generator's settings for one seed.
struct Config {
    seed: u64,
    /// Weight of each action of `ACTIONS`.
    weights: [u64; ACTIONS.len()],
    /// Actions in all; after that, nothing.
    budget: usize,
    /// Stop, stop now and drop the App only after this many actions.
    disrupt_after: usize,
    /// Sessions per raw client thread.
    sessions: usize,
    /// Percent of requests `fetch` defers (besides chosen `DeferRequest`s).
    defer_rate: u64,
    /// Under valgrind: longer bounds.
    slow: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn config() -> &'static Config {
    CONFIG.get().expect("the child's config")
}

impl Config {
    fn new(seed: u64) -> Config {
        let mut r = Rng::new(seed, 0xC0F1);
        let mut weights = [0; ACTIONS.len()];
        for (w, a) in weights.iter_mut().zip(ACTIONS) {
            *w = match a {
                Action::Nothing => 4 + r.below(12),
                Action::Stop | Action::StopNow | Action::DropApp => r.below(3),
                Action::Panic => r.below(5),
                Action::Connect => r.below(3),
                _ => r.below(7),
            };
        }
        let budget = 400 + r.below(1200) as usize;
        Config {
            seed,
            weights,
            budget,
            disrupt_after: r.below(budget as u64 + budget as u64 / 2) as usize,
            sessions: 8 + r.below(16) as usize,
            defer_rate: r.below(60),
            slow: std::env::var_os("UWS_REENTRANCY_SLOW").is_some(),
        }
    }
}

/// Actions taken so far (all threads).
static TAKEN: AtomicUsize = AtomicUsize::new(0);
/// Set once the run is over: values dropped while tidying up act no more.
static FINISHED: AtomicBool = AtomicBool::new(false);

fn pick() -> Action {
    let c = config();
    let taken = TAKEN.fetch_add(1, SeqCst);
    if taken >= c.budget || FINISHED.load(SeqCst) {
        return Action::Nothing;
    }
    let total: u64 = c.weights.iter().sum();
    let mut x = rand(total.max(1));
    for (w, a) in c.weights.iter().zip(ACTIONS) {
        if x < *w {
            let disruptive = matches!(a, Action::Stop | Action::StopNow | Action::DropApp);
            if disruptive && taken < c.disrupt_after {
                return Action::Nothing;
            }
            return a;
        }
        x -= w;
    }
    Action::Nothing
}

/// What the current `fetch` did with its request.
#[derive(Clone, Copy, Debug, Default)]
struct Taken {
    deferred: bool,
    upgraded: bool,
}

thread_local! {
    static FETCH: Cell<Taken> = const { Cell::new(Taken { deferred: false, upgraded: false }) };
}

/// What an action has at hand where it runs.
enum Cx<'a, 'r> {
    Fetch(&'a mut Request<'r>, &'a Server<Data>),
    Ws(&'a mut ServerWebSocket<Data>),
    Server(&'a Server<Data>),
    Client(&'a mut ClientWebSocket<CData>),
    /// Nothing but what everyone can reach (handles, thread-locals).
    Bare,
}

/// Runs one to three chosen actions at `place`.
fn act(place: Place, cx: &mut Cx<'_, '_>) {
    if FINISHED.load(SeqCst) || CONFIG.get().is_none() {
        return;
    }
    let depth = DEPTH.try_with(|d| d.replace(d.get() + 1)).unwrap_or(9);
    if depth < 4 {
        let n = match rand(8) {
            0 => 3,
            1 | 2 => 2,
            _ => 1,
        };
        for _ in 0..n {
            let a = pick();
            if a != Action::Nothing {
                let thread = std::thread::current();
                eprintln!("T {} {place:?} {a:?}", thread.name().unwrap_or("?"));
            }
            perform(place, a, cx);
        }
    }
    let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
}

fn server_of<'s>(cx: &'s Cx<'_, '_>) -> Option<&'s Server<Data>> {
    match cx {
        Cx::Fetch(_, s) | Cx::Server(s) => Some(*s),
        Cx::Ws(ws) => Some(ws.server()),
        _ => None,
    }
}

const TOPICS: [&str; 3] = ["a", "b", "c"];

fn topic() -> &'static str {
    TOPICS[rand(3) as usize]
}

fn close_code() -> u16 {
    [1000, 1001, 1011, 4000][rand(4) as usize]
}

/// A message: mostly short text, sometimes large binary (backpressure,
/// drain).
fn payload() -> OwnedMessage {
    match rand(10) {
        0 => OwnedMessage::Binary(vec![7; 1 + rand(300_000) as usize]),
        1..=3 => OwnedMessage::Binary(vec![1; rand(100) as usize]),
        _ => OwnedMessage::Text("m".repeat(rand(40) as usize)),
    }
}

fn perform(place: Place, a: Action, cx: &mut Cx<'_, '_>) {
    match a {
        Action::Nothing => {}
        Action::Stop | Action::StopNow => {
            let now = a == Action::StopNow;
            match server_of(cx) {
                Some(s) if now => s.stop_now(),
                Some(s) => s.stop(),
                None => {
                    if let Some(h) = handle() {
                        let _ = if now { h.stop_now() } else { h.stop() };
                    }
                }
            }
        }
        Action::DropApp => drop_app(),
        Action::Close | Action::Terminate => match cx {
            Cx::Ws(ws) if a == Action::Close => {
                let _ = ws.close(close_code(), "bye");
            }
            Cx::Ws(ws) => ws.terminate(),
            Cx::Client(ws) if a == Action::Close => {
                let _ = ws.close(close_code(), "bye");
            }
            Cx::Client(ws) => ws.terminate(),
            _ => close_other(cx, a == Action::Terminate),
        },
        Action::CloseOther => close_other(cx, false),
        Action::TerminateOther => close_other(cx, true),
        Action::Send => {
            let m = payload();
            match cx {
                Cx::Ws(ws) => {
                    let _ = ws.send(m.as_message(), false);
                }
                Cx::Client(ws) => {
                    let _ = ws.send(m.as_message(), false);
                }
                Cx::Fetch(_, s) | Cx::Server(s) => {
                    if let Some(id) = some_id() {
                        let _ = s.send(id, m.as_message(), false);
                    }
                }
                Cx::Bare => {
                    if rand(2) == 0 {
                        if let (Some(h), Some(id)) = (handle(), some_id()) {
                            let _ = h.send(id, m, false);
                        }
                    } else if let Some(c) = some_client() {
                        let _ = c.send(m, false);
                    }
                }
            }
        }
        Action::Publish => {
            let m = payload();
            match cx {
                Cx::Ws(ws) => {
                    let _ = ws.publish(topic(), m.as_message(), false);
                }
                Cx::Fetch(_, s) | Cx::Server(s) => {
                    let _ = s.publish(topic(), m.as_message(), false);
                }
                _ => {
                    if let Some(h) = handle() {
                        let _ = h.publish(topic(), m, false);
                    }
                }
            }
        }
        Action::Subscribe | Action::Unsubscribe => {
            let on = a == Action::Subscribe;
            let t = topic();
            match cx {
                Cx::Ws(ws) => {
                    if on {
                        ws.subscribe(t);
                    } else {
                        ws.unsubscribe(t);
                    }
                }
                Cx::Fetch(_, s) | Cx::Server(s) => {
                    if let Some(id) = some_id() {
                        s.with_socket(id, |ws| {
                            if on {
                                ws.subscribe(t)
                            } else {
                                ws.unsubscribe(t)
                            }
                        });
                    }
                }
                _ => {}
            }
        }
        Action::DeferRequest => {
            if let Cx::Fetch(req, s) = cx {
                let taken = FETCH.with(Cell::get);
                let p = s.defer_request(req);
                if p.is_some() && (taken.deferred || taken.upgraded) {
                    violation(format!(
                        "defer_request gave a request that was already taken ({taken:?})"
                    ));
                }
                if let Some(p) = p {
                    FETCH.with(|f| {
                        f.set(Taken {
                            deferred: true,
                            ..taken
                        })
                    });
                    adopt(p);
                }
            }
        }
        Action::Respond => {
            if let Some((pend, p)) = take_pending(false) {
                finish(pend, p);
            }
        }
        Action::Upgrade => match cx {
            Cx::Fetch(req, s) => {
                let taken = FETCH.with(Cell::get);
                let upgraded = s.upgrade(req, UpgradeOptions::new(Data::new()));
                if upgraded && (taken.deferred || taken.upgraded) {
                    violation(format!(
                        "upgrade accepted a request that was already taken ({taken:?})"
                    ));
                }
                if upgraded {
                    FETCH.with(|f| {
                        f.set(Taken {
                            upgraded: true,
                            ..taken
                        })
                    });
                }
            }
            _ => {
                if let Some((_pend, p)) = take_pending(true) {
                    let _ = p.upgrade(UpgradeOptions::new(Data::new()));
                }
            }
        },
        Action::SetTimeout | Action::SetInterval => match server_of(cx) {
            Some(s) => set_timer(s, a == Action::SetInterval),
            None => queue_job(),
        },
        Action::ClearTimer => {
            if let Some(s) = server_of(cx) {
                let id = {
                    let timers = TIMERS.lock().unwrap();
                    (!timers.is_empty()).then(|| timers[rand(timers.len() as u64) as usize])
                };
                if let Some(id) = id {
                    s.clear_timer(id);
                }
            }
        }
        Action::Connect => connect_client(server_of(cx)),
        Action::Panic => {
            if !std::thread::panicking() {
                panic!("{CHOSEN} at {place:?}");
            }
        }
        Action::Job => {
            if rand(3) == 0 {
                queue_client_job();
            } else {
                queue_job();
            }
        }
        Action::PollBody => {
            let own = WAKING
                .try_with(|w| w.borrow().clone())
                .ok()
                .flatten()
                .filter(|_| rand(2) == 0);
            match own {
                Some(pend) => poll_pend(&pend),
                None => {
                    if let Some(pend) = some_pend() {
                        poll_pend(&pend);
                    }
                }
            }
        }
        Action::WakeBody => {
            let waker = {
                let mut wakers = WAKERS.lock().unwrap();
                if wakers.is_empty() {
                    None
                } else {
                    let i = rand(wakers.len() as u64) as usize;
                    Some(if rand(3) == 0 {
                        wakers.swap_remove(i)
                    } else {
                        wakers[i].clone()
                    })
                }
            };
            if let Some(waker) = waker {
                if rand(2) == 0 {
                    waker.wake();
                } else {
                    drop(waker);
                }
            }
        }
        Action::OnSocket => match cx {
            Cx::Client(_) | Cx::Bare => {
                if let Some(c) = some_client() {
                    c.with_socket(|ws| act(Place::WithSocket, &mut Cx::Client(ws)));
                }
            }
            _ => {
                if let (Some(s), Some(id)) = (server_of(cx), some_id()) {
                    s.with_socket(id, |ws| act(Place::WithSocket, &mut Cx::Ws(ws)));
                }
            }
        },
    }
}

/// Closes or terminates a socket by id (a server's or a client's).
fn close_other(cx: &Cx<'_, '_>, terminate: bool) {
    if rand(3) == 0 {
        if let Some(c) = some_client() {
            let _ = if terminate {
                c.terminate()
            } else {
                c.close(close_code(), "other")
            };
        }
        return;
    }
    let Some(id) = some_id() else { return };
    match server_of(cx) {
        Some(s) if terminate => {
            s.with_socket(id, |ws| ws.terminate());
        }
        Some(s) => {
            let _ = s.close(id, close_code(), "other");
        }
        None => {
            if let Some(h) = handle() {
                let code = close_code();
                let _ = h.defer(move |s| {
                    if terminate {
                        s.with_socket(id, |ws| ws.terminate());
                    } else {
                        let _ = s.close(id, code, "other");
                    }
                });
            }
        }
    }
}

// ------------------------------------------------------------------------
// What the actions reach: the App (a thread-local of the server's
// thread), handles, ids, pending requests, wakers, timers.

thread_local! {
    static APP: RefCell<Option<App<Handler>>> = const { RefCell::new(None) };
}

fn drop_app() {
    let app = APP
        .try_with(|a| a.try_borrow_mut().ok().and_then(|mut a| a.take()))
        .ok()
        .flatten();
    drop(app);
}

static HANDLE: Mutex<Option<ServerHandle<Data>>> = Mutex::new(None);
static URL: OnceLock<String> = OnceLock::new();
static IDS: Mutex<Vec<SocketId>> = Mutex::new(Vec::new());
static CLIENTS: Mutex<Vec<ClientHandle<CData>>> = Mutex::new(Vec::new());
static PENDING: Mutex<Vec<Arc<Pend>>> = Mutex::new(Vec::new());
static WAKERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());
static TIMERS: Mutex<Vec<TimerId>> = Mutex::new(Vec::new());
static CONNECTS: AtomicUsize = AtomicUsize::new(0);
static DEFERRED: AtomicUsize = AtomicUsize::new(0);
static ERRORS: AtomicUsize = AtomicUsize::new(0);

fn handle() -> Option<ServerHandle<Data>> {
    HANDLE.lock().unwrap().clone()
}

fn some_id() -> Option<SocketId> {
    let ids = IDS.lock().unwrap();
    (!ids.is_empty()).then(|| ids[rand(ids.len() as u64) as usize])
}

fn some_client() -> Option<ClientHandle<CData>> {
    let clients = CLIENTS.lock().unwrap();
    (!clients.is_empty()).then(|| clients[rand(clients.len() as u64) as usize].clone())
}

/// Keeps `value` in `list` (at most 64: then it replaces one, dropped
/// after the lock is released, since drops act).
fn remember<T>(list: &Mutex<Vec<T>>, value: T) {
    let mut list = list.lock().unwrap();
    let old = if list.len() < 64 {
        list.push(value);
        None
    } else {
        let i = rand(64) as usize;
        Some(std::mem::replace(&mut list[i], value))
    };
    drop(list);
    drop(old);
}

/// A pending request, kept where every thread's actions can take it.
/// The request is taken out while it is used (no lock of ours is held
/// while the crate runs).
struct Pend {
    request: Mutex<Option<PendingRequest<Data>>>,
    _t: Tracker,
}

fn some_pend() -> Option<Arc<Pend>> {
    let list = PENDING.lock().unwrap();
    (!list.is_empty()).then(|| list[rand(list.len() as u64) as usize].clone())
}

/// A request `defer_request` just gave: kept, and often its body is
/// polled at once (the waker stays with the crate until the body comes).
fn adopt(p: PendingRequest<Data>) {
    DEFERRED.fetch_add(1, SeqCst);
    let pend = Arc::new(Pend {
        request: Mutex::new(Some(p)),
        _t: Tracker::new(Kind::Pend),
    });
    remember(&PENDING, pend.clone());
    if rand(3) != 0 {
        poll_pend(&pend);
    }
}

/// Takes a pending request out of its place (one that is a WebSocket
/// handshake if `handshake`).
fn take_pending(handshake: bool) -> Option<(Arc<Pend>, PendingRequest<Data>)> {
    let pend = some_pend()?;
    let mut slot = pend.request.try_lock().ok()?;
    if handshake && !slot.as_ref()?.is_websocket_upgrade() {
        return None;
    }
    let p = slot.take()?;
    drop(slot);
    Some((pend, p))
}

/// Answers a pending request one way or another.
fn finish(pend: Arc<Pend>, p: PendingRequest<Data>) {
    match rand(7) {
        0 | 1 => {
            let _ = p.respond(Response::new("answered"));
        }
        2 => stream(p),
        3 => {
            let _ = p.upgrade(UpgradeOptions::new(Data::new()));
        }
        4 => {
            let t = Tracker::new(Kind::Closure);
            p.on_body(move |s, _body, p| {
                let _keep = &t;
                let pend = Arc::new(Pend {
                    request: Mutex::new(Some(p)),
                    _t: Tracker::new(Kind::Pend),
                });
                remember(&PENDING, pend);
                act(Place::OnBody, &mut Cx::Server(s));
            });
        }
        5 => drop(p),
        _ => {
            // Poll once more and put it back.
            put_back(&pend, p);
            poll_pend(&pend);
        }
    }
}

fn put_back(pend: &Pend, p: PendingRequest<Data>) {
    if let Ok(mut slot) = pend.request.try_lock() {
        if slot.is_none() {
            *slot = Some(p);
            return;
        }
    }
    drop(p);
}

/// Streams a body: the producer writes up to a few MiB in chunks (more
/// than the socket takes: writable events), acting each time.
fn stream(p: PendingRequest<Data>) {
    let t = Tracker::new(Kind::Closure);
    let calls = 1 + rand(4);
    let chunk = [0usize, 100, 64 << 10, 1 << 20, 4 << 20][rand(5) as usize];
    let mut n = 0;
    let _ = p.stream(Response::new(""), move |w| {
        let _keep = &t;
        n += 1;
        act(Place::Producer, &mut Cx::Bare);
        if chunk > 0 {
            w.write(&vec![b'x'; chunk]);
        }
        if n >= calls {
            Flow::Done
        } else {
            Flow::More
        }
    });
}

/// Polls a pending request's body once with a new waker of ours.
fn poll_pend(pend: &Arc<Pend>) {
    let Some(p) = pend.request.try_lock().ok().and_then(|mut s| s.take()) else {
        return;
    };
    let waker = Waker::from(Arc::new(TestWaker {
        pend: Arc::downgrade(pend),
        _t: Tracker::new(Kind::Waker),
    }));
    if rand(4) == 0 {
        remember(&WAKERS, waker.clone());
    }
    let polled = {
        let mut future = std::pin::pin!(p.body());
        future.as_mut().poll(&mut Context::from_waker(&waker))
    };
    drop(waker);
    drop(polled);
    put_back(pend, p);
}

/// A body waker: acts when woken and when dropped.
struct TestWaker {
    pend: Weak<Pend>,
    _t: Tracker,
}

impl Wake for TestWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let own = self.pend.upgrade();
        let before = WAKING.try_with(|w| w.replace(own)).ok().flatten();
        act(Place::Wake, &mut Cx::Bare);
        let _ = WAKING.try_with(|w| w.replace(before));
    }
}

fn set_timer(s: &Server<Data>, interval: bool) {
    let t = Tracker::new(Kind::Closure);
    let after = Duration::from_millis(1 + rand(30));
    let id = if interval {
        s.set_interval(after, move |s| {
            let _keep = &t;
            act(Place::Interval, &mut Cx::Server(s));
        })
    } else {
        s.set_timeout(after, move |s| {
            let _keep = &t;
            act(Place::Timeout, &mut Cx::Server(s));
        })
    };
    remember(&TIMERS, id);
}

fn queue_job() {
    if let Some(h) = handle() {
        let t = Tracker::new(Kind::Closure);
        let _ = h.defer(move |s| {
            let _keep = &t;
            act(Place::Job, &mut Cx::Server(s));
        });
    }
}

fn queue_client_job() {
    if let Some(c) = some_client() {
        let t = Tracker::new(Kind::Closure);
        let _ = c.defer(move |ws| {
            let _keep = &t;
            match ws {
                Some(ws) => act(Place::ClientJob, &mut Cx::Client(ws)),
                None => act(Place::ClientJob, &mut Cx::Bare),
            }
        });
    }
}

/// Connects a client to the server, on a thread that runs a loop (the
/// server's: owned by the server or not; the client thread's).
fn connect_client(server: Option<&Server<Data>>) {
    if !LOOP.try_with(Cell::get).unwrap_or(false) || CONNECTS.fetch_add(1, SeqCst) >= 6 {
        return;
    }
    let Some(url) = URL.get() else { return };
    let options = ConnectOptions {
        connect_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let _ = match server {
        Some(s) if rand(2) == 0 => s.connect(url, options, ClientActs::new(), CData::new()),
        _ => uws::connect(url, options, ClientActs::new(), CData::new()),
    };
}

// ------------------------------------------------------------------------
// User values that count themselves and act when dropped.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Data,
    ClientData,
    Closure,
    Waker,
    Pend,
    Handler,
    ClientHandler,
}

const KINDS: [Kind; 7] = [
    Kind::Data,
    Kind::ClientData,
    Kind::Closure,
    Kind::Waker,
    Kind::Pend,
    Kind::Handler,
    Kind::ClientHandler,
];

static CREATED: [AtomicUsize; 7] = [const { AtomicUsize::new(0) }; 7];
static DROPPED: [AtomicUsize; 7] = [const { AtomicUsize::new(0) }; 7];
static TWICE: AtomicUsize = AtomicUsize::new(0);

const ALIVE: u64 = 0x5EED_A11E;
const DEAD: u64 = 0xDEAD_DEAD;

/// Counts one value of a kind; its drop counts it out (a second drop of
/// the same value is noticed) and acts.
struct Tracker {
    kind: Kind,
    magic: u64,
}

impl Tracker {
    fn new(kind: Kind) -> Tracker {
        CREATED[kind as usize].fetch_add(1, SeqCst);
        Tracker { kind, magic: ALIVE }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if self.magic != ALIVE {
            TWICE.fetch_add(1, SeqCst);
        }
        self.magic = DEAD;
        DROPPED[self.kind as usize].fetch_add(1, SeqCst);
        let place = match self.kind {
            Kind::Data => Place::DataDrop,
            Kind::ClientData => Place::ClientDataDrop,
            Kind::Closure => Place::ClosureDrop,
            Kind::Waker => Place::WakerDrop,
            Kind::Pend => Place::PendDrop,
            Kind::Handler => Place::HandlerDrop,
            Kind::ClientHandler => Place::ClientHandlerDrop,
        };
        act(place, &mut Cx::Bare);
    }
}

/// A server socket's data.
struct Data {
    _t: Tracker,
}

impl Data {
    fn new() -> Data {
        Data {
            _t: Tracker::new(Kind::Data),
        }
    }
}

/// A client connection's data.
struct CData {
    _t: Tracker,
}

impl CData {
    fn new() -> CData {
        CData {
            _t: Tracker::new(Kind::ClientData),
        }
    }
}

/// The server's handler: acts everywhere.
struct Handler {
    _t: Tracker,
}

impl WebSocketHandler for Handler {
    type Data = Data;

    fn fetch(&self, req: &mut Request<'_>, server: &Server<Data>) -> Response {
        let handshake = req.is_websocket_upgrade();
        FETCH.with(|f| f.set(Taken::default()));
        if rand(100) < config().defer_rate {
            perform(
                Place::Fetch,
                Action::DeferRequest,
                &mut Cx::Fetch(req, server),
            );
        }
        act(Place::Fetch, &mut Cx::Fetch(req, server));
        // Most handshakes become sockets (after whatever was chosen: a
        // defer first makes this the "upgrade after defer" path).
        let deferred = FETCH.with(Cell::get).deferred;
        if handshake && rand(10) < if deferred { 2 } else { 7 } {
            perform(Place::Fetch, Action::Upgrade, &mut Cx::Fetch(req, server));
        }
        Response::new("fetched")
    }

    fn open(&self, ws: &mut ServerWebSocket<Data>) {
        remember(&IDS, ws.id());
        act(Place::Open, &mut Cx::Ws(ws));
    }

    fn message(&self, ws: &mut ServerWebSocket<Data>, _message: Message<'_>) {
        act(Place::Message, &mut Cx::Ws(ws));
    }

    fn close(&self, ws: &mut ServerWebSocket<Data>, _code: u16, _reason: &str) {
        act(Place::Close, &mut Cx::Ws(ws));
    }

    fn drain(&self, ws: &mut ServerWebSocket<Data>) {
        act(Place::Drain, &mut Cx::Ws(ws));
    }

    fn ping(&self, ws: &mut ServerWebSocket<Data>, _data: &[u8]) {
        act(Place::Ping, &mut Cx::Ws(ws));
    }

    fn pong(&self, ws: &mut ServerWebSocket<Data>, _data: &[u8]) {
        act(Place::Pong, &mut Cx::Ws(ws));
    }

    fn subscription(
        &self,
        server: &Server<Data>,
        _ws: SocketId,
        _topic: &str,
        _old: usize,
        _new: usize,
    ) {
        act(Place::Subscription, &mut Cx::Server(server));
    }

    fn error(&self, ws: Option<&mut ServerWebSocket<Data>>, _error: &Error) {
        ERRORS.fetch_add(1, SeqCst);
        match ws {
            Some(ws) => act(Place::Error, &mut Cx::Ws(ws)),
            None => act(Place::Error, &mut Cx::Bare),
        }
    }
}

/// A client's handler: acts everywhere too.
struct ClientActs {
    _t: Tracker,
}

impl ClientActs {
    fn new() -> ClientActs {
        ClientActs {
            _t: Tracker::new(Kind::ClientHandler),
        }
    }
}

impl ClientHandler for ClientActs {
    type Data = CData;

    fn open(&self, ws: &mut ClientWebSocket<CData>) {
        remember(&CLIENTS, ws.handle());
        act(Place::ClientOpen, &mut Cx::Client(ws));
    }

    fn message(&self, ws: &mut ClientWebSocket<CData>, _message: Message<'_>) {
        act(Place::ClientMessage, &mut Cx::Client(ws));
    }

    fn close(&self, ws: &mut ClientWebSocket<CData>, _code: u16, _reason: &str) {
        act(Place::ClientClose, &mut Cx::Client(ws));
    }

    fn drain(&self, ws: &mut ClientWebSocket<CData>) {
        act(Place::ClientDrain, &mut Cx::Client(ws));
    }

    fn ping(&self, ws: &mut ClientWebSocket<CData>, _data: &[u8]) {
        act(Place::ClientPing, &mut Cx::Client(ws));
    }

    fn pong(&self, ws: &mut ClientWebSocket<CData>, _data: &[u8]) {
        act(Place::ClientPong, &mut Cx::Client(ws));
    }

    fn error(&self, ws: Option<&mut ClientWebSocket<CData>>, _error: &Error) {
        ERRORS.fetch_add(1, SeqCst);
        match ws {
            Some(ws) => act(Place::ClientError, &mut Cx::Client(ws)),
            None => act(Place::ClientError, &mut Cx::Bare),
        }
    }
}

// ------------------------------------------------------------------------
// The child: one seed.

static VIOLATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static UNEXPECTED: AtomicUsize = AtomicUsize::new(0);
static CHOSEN_PANICS: AtomicUsize = AtomicUsize::new(0);

fn violation(what: String) {
    println!("VIOLATION: {what}");
    VIOLATIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(what);
}

/// Runs seed `seed` and exits the process: 0 when every invariant held,
/// 3 when one did not, 4 when a thread did not end.
fn child(seed: u64) -> ! {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("(not a string)");
        if message.starts_with(CHOSEN) {
            CHOSEN_PANICS.fetch_add(1, SeqCst);
        } else {
            UNEXPECTED.fetch_add(1, SeqCst);
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln!(
                "unexpected panic on {:?} at {location}: {message}\n{}",
                std::thread::current().name(),
                std::backtrace::Backtrace::force_capture()
            );
        }
    }));
    let _ = CONFIG.set(Config::new(seed));
    let c = config();
    let slow = if c.slow { 10 } else { 1 };
    println!(
        "seed {seed}: budget {}, disrupt after {}, sessions {}, weights {:?}",
        c.budget,
        c.disrupt_after,
        c.sessions,
        ACTIONS.iter().zip(c.weights).collect::<Vec<_>>()
    );

    // The server, its App in a thread-local of its thread.
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            seed_thread(1);
            LOOP.with(|l| l.set(true));
            let options = ServeOptions {
                hostname: "127.0.0.1".into(),
                port: 0,
                stop_grace_period: Duration::from_millis(300),
                websocket: WebSocketOptions {
                    backpressure_limit: 256 << 10,
                    ..Default::default()
                },
                ..Default::default()
            };
            let handler = Handler {
                _t: Tracker::new(Kind::Handler),
            };
            let app = serve(options, handler).expect("serve");
            tx.send((app.port(), app.handle())).unwrap();
            APP.with(|a| *a.borrow_mut() = Some(app));
            uws::run();
            LOOP.with(|l| l.set(false));
            let app = APP.with(|a| a.borrow_mut().take());
            if let Some(app) = &app {
                if app.pending_requests() != 0 {
                    violation(format!(
                        "{} pending requests left after the loop ended",
                        app.pending_requests()
                    ));
                }
            }
            drop(app);
            // What the App's teardown started (client closes) ends here.
            uws::run();
        })
        .unwrap();
    let (port, server_handle) = rx
        .recv_timeout(Duration::from_secs(10 * slow))
        .expect("the server starts");
    *HANDLE.lock().unwrap() = Some(server_handle.clone());
    let url = format!("ws://127.0.0.1:{port}/client");
    let _ = URL.set(url.clone());

    // A client on a thread of its own.
    let client = std::thread::Builder::new()
        .name("client".into())
        .spawn(move || {
            seed_thread(2);
            LOOP.with(|l| l.set(true));
            let options = ConnectOptions {
                connect_timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            };
            let _ = uws::connect(&url, options, ClientActs::new(), CData::new());
            uws::run();
            LOOP.with(|l| l.set(false));
        })
        .unwrap();

    // An executor off the loop that answers and polls pending requests.
    static WORKER_STOP: AtomicBool = AtomicBool::new(false);
    let worker = std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| {
            seed_thread(3);
            while !WORKER_STOP.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(5 + rand(30)));
                let _ = catch_unwind(|| act(Place::Worker, &mut Cx::Bare));
            }
        })
        .unwrap();

    // Raw clients.
    let drivers: Vec<_> = (0..2u64)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("driver{i}"))
                .spawn(move || drive(port, Rng::new(seed, 100 + i)))
                .unwrap()
        })
        .collect();
    let bound = Duration::from_secs(30 * slow);
    let deadline = Instant::now() + bound;
    for (i, d) in drivers.into_iter().enumerate() {
        join_by(d, deadline, &format!("raw client {i}"));
    }
    // Wind down: the server stops (unless an action did already).
    WORKER_STOP.store(true, SeqCst);
    join_by(worker, deadline, "the worker");
    let _ = server_handle.stop();
    drop(server_handle);
    join_by(server, deadline, "the server's loop");
    join_by(client, deadline, "the client's loop");

    // Tidy up what the actions kept, then count.
    FINISHED.store(true, SeqCst);
    *HANDLE.lock().unwrap() = None;
    let pends = std::mem::take(&mut *PENDING.lock().unwrap());
    drop(pends);
    let wakers = std::mem::take(&mut *WAKERS.lock().unwrap());
    drop(wakers);
    let clients = std::mem::take(&mut *CLIENTS.lock().unwrap());
    drop(clients);
    let mut counts = Vec::new();
    for k in KINDS {
        let (made, gone) = (
            CREATED[k as usize].load(SeqCst),
            DROPPED[k as usize].load(SeqCst),
        );
        counts.push(format!("{k:?} {made}/{gone}"));
        if made != gone {
            violation(format!("{k:?}: {made} made, {gone} dropped"));
        }
    }
    if CREATED[Kind::Handler as usize].load(SeqCst) != 1 {
        violation("the server's handler was not made once".into());
    }
    if TWICE.load(SeqCst) != 0 {
        violation(format!("{} values dropped twice", TWICE.load(SeqCst)));
    }
    if UNEXPECTED.load(SeqCst) != 0 {
        violation(format!(
            "{} panics that were not chosen",
            UNEXPECTED.load(SeqCst)
        ));
    }
    println!(
        "stats: actions {}, requests {}, deferred {}, sockets {}, clients {}, chosen panics {}, \
         errors {}, made/dropped [{}]",
        TAKEN.load(SeqCst).min(c.budget),
        REQUESTS.load(SeqCst),
        DEFERRED.load(SeqCst),
        OPENED.load(SeqCst),
        CONNECTS.load(SeqCst).min(6),
        CHOSEN_PANICS.load(SeqCst),
        ERRORS.load(SeqCst),
        counts.join(", ")
    );
    let failed = !VIOLATIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty();
    let _ = std::io::stdout().flush();
    std::process::exit(if failed { 3 } else { 0 });
}

/// Joins `thread` unless it is still running at `deadline`: then the run
/// hung (the child says which thread and exits 4).
fn join_by(thread: JoinHandle<()>, deadline: Instant, what: &str) {
    while !thread.is_finished() {
        if Instant::now() > deadline {
            println!("HANG: {what} did not end");
            let _ = std::io::stdout().flush();
            std::process::exit(4);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if thread.join().is_err() {
        violation(format!("{what} panicked"));
    }
}

// ------------------------------------------------------------------------
// Raw clients: random HTTP requests (bodies in pieces, some never
// complete) and WebSocket sessions (masked frames of every kind, abrupt
// ends), from the seed.

static REQUESTS: AtomicUsize = AtomicUsize::new(0);
static OPENED: AtomicUsize = AtomicUsize::new(0);

fn drive(port: u16, mut r: Rng) {
    for _ in 0..config().sessions {
        let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
            return; // The server is gone.
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(10)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        match r.below(10) {
            0..=2 => get(s, &mut r),
            3..=5 => post(s, &mut r),
            _ => websocket(s, &mut r),
        }
    }
}

fn pause(r: &mut Rng) {
    std::thread::sleep(Duration::from_millis(r.below(25)));
}

/// Reads what arrives until `until` or the end of the connection; returns
/// whether it ended.
fn read_until(s: &mut TcpStream, got: &mut Vec<u8>, until: Instant, slow: bool) -> bool {
    let mut buf = vec![0u8; if slow { 4096 } else { 256 << 10 }];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if slow {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
        if got.len() > 64 << 20 {
            got.clear(); // Counted responses stay counted below.
        }
    }
    false
}

/// Number of responses (status lines) in what an HTTP connection got.
fn responses(got: &[u8]) -> usize {
    got.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

/// Whether `got` holds `asked` responses, the last one complete.
fn answered(got: &[u8], asked: usize) -> bool {
    if responses(got) < asked {
        return false;
    }
    let last = got.windows(9).rposition(|w| w == b"HTTP/1.1 ").unwrap_or(0);
    common::http::complete_response(&got[last..]) || got.ends_with(b"0\r\n\r\n")
}

fn session_end(r: &mut Rng) -> Instant {
    let ms = if config().slow {
        4000
    } else {
        400 + r.below(800)
    };
    Instant::now() + Duration::from_millis(ms)
}

/// Sends `bytes` split at a random point, with a pause.
fn send_split(s: &mut TcpStream, bytes: &[u8], r: &mut Rng) -> bool {
    let cut = r.below(bytes.len() as u64 + 1) as usize;
    if s.write_all(&bytes[..cut]).is_err() {
        return false;
    }
    if cut < bytes.len() {
        pause(r);
    }
    s.write_all(&bytes[cut..]).is_ok()
}

fn get(mut s: TcpStream, r: &mut Rng) {
    let asked = 1 + r.below(2) as usize;
    let mut got = Vec::new();
    let end = session_end(r);
    for i in 0..asked {
        REQUESTS.fetch_add(1, SeqCst);
        let request = format!("GET /get/{i} HTTP/1.1\r\nHost: x\r\n\r\n");
        if !send_split(&mut s, request.as_bytes(), r) {
            break;
        }
    }
    let slow = r.below(4) == 0;
    let mut ended = false;
    while !ended && Instant::now() < end && !answered(&got, asked) {
        ended = read_until(
            &mut s,
            &mut got,
            Instant::now() + Duration::from_millis(20),
            slow,
        );
    }
    check_answers(&got, asked, "GET");
}

fn post(mut s: TcpStream, r: &mut Rng) {
    REQUESTS.fetch_add(1, SeqCst);
    let len = [0u64, 5, 1000, 70_000][r.below(4) as usize] + r.below(100);
    let head = format!("POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
    if !send_split(&mut s, head.as_bytes(), r) {
        return;
    }
    let body = vec![b'b'; len as usize];
    // Some bodies never complete: the request waits until we go.
    let sent = if r.below(5) == 0 {
        r.below(len + 1) as usize
    } else {
        body.len()
    };
    let pieces = 1 + r.below(4);
    let mut at = 0;
    for i in 0..pieces {
        let to = if i + 1 == pieces {
            sent
        } else {
            at + (sent - at) / 2
        };
        pause(r);
        if s.write_all(&body[at..to]).is_err() {
            return;
        }
        at = to;
    }
    let slow = r.below(3) == 0;
    let end = session_end(r);
    let mut got = Vec::new();
    let mut ended = false;
    while !ended && Instant::now() < end && !answered(&got, 1) {
        ended = read_until(
            &mut s,
            &mut got,
            Instant::now() + Duration::from_millis(20),
            slow,
        );
    }
    check_answers(&got, 1, "POST");
}

/// An HTTP connection is never answered more often than it asked.
fn check_answers(got: &[u8], asked: usize, what: &str) {
    let n = responses(got);
    if n > asked {
        violation(format!("{what}: {n} responses to {asked} requests"));
    }
}

fn websocket(mut s: TcpStream, r: &mut Rng) {
    REQUESTS.fetch_add(1, SeqCst);
    let extra = if r.below(3) == 0 {
        "Sec-WebSocket-Protocol: a, b\r\n"
    } else {
        ""
    };
    if !send_split(&mut s, &common::handshake("/ws", extra), r) {
        return;
    }
    let mut got = Vec::new();
    let end = session_end(r);
    while Instant::now() < end && !got.windows(4).any(|w| w == b"\r\n\r\n") {
        if read_until(
            &mut s,
            &mut got,
            Instant::now() + Duration::from_millis(20),
            false,
        ) {
            return;
        }
    }
    if !got.starts_with(b"HTTP/1.1 101") {
        return;
    }
    OPENED.fetch_add(1, SeqCst);
    let frames = r.below(8);
    for _ in 0..frames {
        let mask = (r.next() as u32).to_be_bytes();
        let frame = match r.below(12) {
            0..=3 => masked_frame(0x81, "t".repeat(r.below(200) as usize).as_bytes(), mask),
            4 | 5 => masked_frame(0x82, &vec![9; r.below(70_000) as usize], mask),
            6 => masked_frame(0x89, b"ping", mask),
            7 => masked_frame(0x8A, b"pong", mask),
            8 => {
                let mut f = masked_frame(0x01, b"frag", mask);
                f.extend(masked_frame(0x80, b"ment", mask));
                f
            }
            9 => masked_frame(0x81, &[0xff, 0xfe], mask), // invalid UTF-8: 1007
            10 => masked_frame(0x88, &[0x03, 0xe8], mask), // close 1000
            _ => common::raw::frame(0x81, b"unmasked"),   // a protocol error
        };
        if !send_split(&mut s, &frame, r) {
            return;
        }
        let slow = r.below(3) == 0;
        if read_until(
            &mut s,
            &mut got,
            Instant::now() + Duration::from_millis(5),
            slow,
        ) {
            return;
        }
    }
    match r.below(3) {
        0 => {} // Abrupt: dropped.
        1 => {
            let close = masked_frame(0x88, &[0x03, 0xe8], [1, 2, 3, 4]);
            let _ = s.write_all(&close);
            read_until(&mut s, &mut got, session_end(r), false);
        }
        _ => {
            read_until(&mut s, &mut got, session_end(r), r.below(2) == 0);
        }
    }
}

//! `loadgen`: a single-threaded, epoll-driven WebSocket load generator for the
//! uws benchmarks (chat room fan-out, echo, idle connections), with an HTTP
//! keep-alive mode (pipelined or not).
//!
//! Design goals: never be the bottleneck. One thread, level-triggered epoll,
//! non-blocking sockets, one large shared receive buffer, server frames parsed
//! incrementally without copying payloads, client frames built once and
//! copied into per-connection output buffers whose capacity is reused, so the
//! steady state allocates nothing and issues one `recv` per readable event and
//! one `send` per flush.
//!
//! Only loopback targets are meant (`--host 127.0.0.x`).

mod http;
mod latency;

use latency::{now_ns, ChatLatency};
use std::io::Write;
use std::time::{Duration, Instant};

/// Fixed masking key for every client frame (RFC 6455 requires a mask, not a
/// random one for our purposes).
const MASK: [u8; 4] = [0x3c, 0xa5, 0x71, 0x0e];
/// 16 raw bytes ("uws-loadgen-key!") in base64.
const WS_KEY: &str = "dXdzLWxvYWRnZW4ta2V5IQ==";
/// Shared receive buffer size.
const RBUF: usize = 256 * 1024;
/// Upper bound on payload bytes we keep for inspection (ready / close / ping).
const KEEP_MAX: usize = 256;
/// Chat: the message list is cycled this many times per batch (50 * 32 = 1600).
const CHAT_REPEAT: usize = 32;
/// Chat messages come back as "ClientK: line"; K names the sender.
const NAME_PREFIX: &[u8] = b"Client";
/// `Conn::lat_pos` once the sender is known / when it is not looked for.
const LAT_OK: u8 = 254;
const LAT_NONE: u8 = 255;

/// Fifty short chat lines, cycled to make one batch of 1600 messages.
const CHAT_LINES: [&str; 50] = [
    "hey",
    "morning all",
    "anyone around?",
    "yes, here",
    "what's up",
    "just got back",
    "coffee first",
    "the build is green again",
    "nice",
    "lol",
    "who broke main?",
    "not me",
    "checking the logs",
    "found it, a typo",
    "pushing a fix now",
    "thanks!",
    "np",
    "lunch at noon?",
    "sure",
    "count me in",
    "where though",
    "the usual place",
    "ok see you there",
    "running five minutes late",
    "no worries",
    "did you see the game last night",
    "no spoilers please",
    "haha fine",
    "deploy went out",
    "graphs look flat",
    "latency is down a bit",
    "good news",
    "meeting moved to three",
    "again?",
    "yep",
    "I'll bring the slides",
    "who has the notes",
    "in the shared folder",
    "got it",
    "weekend plans?",
    "hiking if it stays dry",
    "rain all day here",
    "stay warm",
    "will do",
    "ping me when you're free",
    "free now",
    "calling",
    "brb",
    "back",
    "ok, signing off, bye",
];

// ----------------------------------------------------------------------------
// Options
// ----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Chat,
    Echo,
    Idle,
    Http,
}

struct Opts {
    mode: Mode,
    host: [u8; 4],
    port: u16,
    /// `--ports A,B,...`: client K connects to the K-th port of the list,
    /// round robin (a room spread over several servers); else `port`.
    ports: Vec<u16>,
    clients: usize,
    batches: Option<u64>,
    seconds: Option<f64>,
    inflight: usize,
    pipeline: usize,
    size: usize,
    messages: Option<u64>,
    hold: f64,
    sources: usize,
    max_pending: usize,
    connect_timeout: f64,
    quiet: bool,
    /// HTTP mode: the request target (`--path`, default `/`).
    path: String,
}

fn usage() -> ! {
    eprintln!(
        "usage:
  loadgen chat --host 127.0.0.1 --port N --clients N [--batches B] [--seconds S]
  loadgen chat --ports A,B,... ...   (clients spread round robin over several servers)
  loadgen echo --host 127.0.0.1 --port N --clients N --inflight K --size S [--seconds T] [--messages M]
  loadgen idle --host 127.0.0.1 --port N --clients N [--hold S] [--sources K]
  loadgen http --host 127.0.0.1 --port N --clients N [--pipeline K] [--path /P] [--seconds T] [--messages M]
common: [--max-pending P] (concurrent connects, default 128)
        [--connect-timeout S] (default 60) [--quiet] (no per-second lines)"
    );
    std::process::exit(2);
}

fn parse_opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        usage();
    }
    let mode = match args[0].as_str() {
        "chat" => Mode::Chat,
        "echo" => Mode::Echo,
        "idle" => Mode::Idle,
        "http" => Mode::Http,
        "-h" | "--help" | "help" => usage(),
        other => {
            eprintln!("loadgen: unknown mode {other:?}");
            usage()
        }
    };
    let mut o = Opts {
        mode,
        host: [127, 0, 0, 1],
        port: 3000,
        ports: Vec::new(),
        clients: 16,
        batches: None,
        seconds: None,
        inflight: 16,
        pipeline: 1,
        size: 32,
        messages: None,
        hold: 5.0,
        sources: 0,
        max_pending: 128,
        connect_timeout: 60.0,
        quiet: false,
        path: "/".into(),
    };
    let mut i = 1;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--quiet" {
            o.quiet = true;
            i += 1;
            continue;
        }
        let val = match args.get(i + 1) {
            Some(v) => v.as_str(),
            None => {
                eprintln!("loadgen: {flag} needs a value");
                usage()
            }
        };
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> T {
            v.parse().unwrap_or_else(|_| {
                eprintln!("loadgen: bad value for {flag}: {v:?}");
                std::process::exit(2)
            })
        }
        match flag {
            "--host" => {
                let parts: Vec<&str> = val.split('.').collect();
                if parts.len() != 4 {
                    eprintln!("loadgen: --host must be an IPv4 address");
                    std::process::exit(2);
                }
                for (k, p) in parts.iter().enumerate() {
                    o.host[k] = num(flag, p);
                }
            }
            "--port" => o.port = num(flag, val),
            "--path" => {
                if !val.starts_with('/') || val.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    eprintln!("loadgen: --path must start with '/' and have no spaces");
                    std::process::exit(2)
                }
                o.path = val.to_string()
            }
            "--ports" => o.ports = val.split(',').map(|p| num(flag, p)).collect(),
            "--clients" => o.clients = num(flag, val),
            "--batches" => o.batches = Some(num(flag, val)),
            "--seconds" => o.seconds = Some(num(flag, val)),
            "--inflight" => o.inflight = num(flag, val),
            "--pipeline" => o.pipeline = num(flag, val),
            "--size" => o.size = num(flag, val),
            "--messages" => o.messages = Some(num(flag, val)),
            "--hold" => o.hold = num(flag, val),
            "--sources" => o.sources = num(flag, val),
            "--max-pending" => o.max_pending = num(flag, val),
            "--connect-timeout" => o.connect_timeout = num(flag, val),
            _ => {
                eprintln!("loadgen: unknown option {flag}");
                usage()
            }
        }
        i += 2;
    }
    if o.clients == 0 || o.max_pending == 0 {
        eprintln!("loadgen: --clients and --max-pending must be positive");
        std::process::exit(2);
    }
    if o.host[0] != 127 {
        eprintln!("loadgen: only loopback targets (127.x.x.x) are supported");
        std::process::exit(2);
    }
    if o.sources == 0 {
        // About 28k ephemeral ports per source address; stay well below.
        o.sources = if o.mode == Mode::Idle {
            o.clients.div_ceil(20_000).max(4)
        } else {
            1
        };
    }
    o.sources = o.sources.min(250);
    if o.ports.is_empty() {
        o.ports.push(o.port);
    }
    o
}

// ----------------------------------------------------------------------------
// Frames
// ----------------------------------------------------------------------------

/// Appends one masked client frame (FIN set) to `out`.
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    let start = out.len();
    out.extend_from_slice(payload);
    for (k, b) in out[start..].iter_mut().enumerate() {
        *b ^= MASK[k & 3];
    }
}

/// Length of a server frame header given its second byte (server frames are
/// never masked; a masked one is rejected when parsed).
#[inline]
fn header_len(b1: u8) -> usize {
    let base = match b1 & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    base + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// K of a chat message "ClientK: ...", when the payload is one.
#[inline]
fn sender_of(payload: &[u8]) -> Option<u32> {
    let rest = payload.strip_prefix(NAME_PREFIX)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 || rest.get(digits) != Some(&b':') {
        return None;
    }
    Some(
        rest[..digits]
            .iter()
            .fold(0, |k, &d| k * 10 + (d - b'0') as u32),
    )
}

// ----------------------------------------------------------------------------
// Connections
// ----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    NotStarted,
    Connecting,
    Handshake,
    Open,
    Closed,
}

struct Conn {
    fd: i32,
    st: St,
    /// Outgoing bytes, always whole frames appended at the end.
    out: Vec<u8>,
    out_pos: usize,
    /// EPOLLOUT currently requested.
    want_out: bool,
    /// HTTP response bytes until the end of the headers.
    hs: Vec<u8>,

    // Incremental frame parser.
    hdr: [u8; 14],
    hdr_len: usize,
    in_payload: bool,
    remaining: u64,
    op: u8,
    fin: bool,
    msg_op: u8,
    keep_ctrl: bool,
    keep_data: bool,
    ctrl_buf: Vec<u8>,
    data_buf: Vec<u8>,
    /// Set by the mode: keep data payloads (the chat `ready` phase).
    inspect_data: bool,

    // Parser results, consumed by the runner.
    msgs: u64,
    /// Payload bytes of data frames (lets chat check the "NAME: msg" format
    /// without looking at the bytes).
    data_bytes: u64,
    text_msgs: u64,
    binary_msgs: u64,
    ready: bool,
    peer_closed: bool,
    close_code: u16,

    /// HTTP: body bytes of the current response still to come.
    body_left: u64,

    // Chat batch accounting.
    batch_recv: u64,
    batch_done: bool,

    // Chat latency: our sends as (bytes of `out` accepted so far, time the
    // `send` call started), when `track_sends`; the sender of the data frame
    // being parsed (bytes of "ClientK:" seen in `lat_pos`, K in `lat_k`), and
    // the senders of the messages completed by the last `feed`.
    track_sends: bool,
    marks: Vec<(u64, u64)>,
    lat_on: bool,
    lat_pos: u8,
    lat_k: u32,
    arrivals: Vec<u32>,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            fd: -1,
            st: St::NotStarted,
            out: Vec::new(),
            out_pos: 0,
            want_out: false,
            hs: Vec::new(),
            hdr: [0; 14],
            hdr_len: 0,
            in_payload: false,
            remaining: 0,
            op: 0,
            fin: false,
            msg_op: 0,
            keep_ctrl: false,
            keep_data: false,
            ctrl_buf: Vec::new(),
            data_buf: Vec::new(),
            inspect_data: false,
            msgs: 0,
            data_bytes: 0,
            text_msgs: 0,
            binary_msgs: 0,
            ready: false,
            peer_closed: false,
            close_code: 0,
            body_left: 0,
            batch_recv: 0,
            batch_done: false,
            track_sends: false,
            marks: Vec::new(),
            lat_on: false,
            lat_pos: LAT_NONE,
            lat_k: 0,
            arrivals: Vec::new(),
        }
    }

    /// Reads the sender's number off the start of a chat message's payload
    /// ("ClientK:"), possibly split across reads.
    #[inline]
    fn scan_sender(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let p = self.lat_pos as usize;
            if p < NAME_PREFIX.len() {
                if b != NAME_PREFIX[p] {
                    self.lat_pos = LAT_NONE;
                    return;
                }
            } else if b.is_ascii_digit() && p < NAME_PREFIX.len() + 9 {
                self.lat_k = self.lat_k * 10 + (b - b'0') as u32;
            } else {
                self.lat_pos = if b == b':' && p > NAME_PREFIX.len() {
                    LAT_OK
                } else {
                    LAT_NONE
                };
                return;
            }
            self.lat_pos += 1;
        }
    }

    /// Feeds received bytes (after the HTTP upgrade) to the frame parser.
    fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        let n = data.len();
        let mut i = 0;
        while i < n {
            if self.in_payload {
                let avail = (n - i) as u64;
                let take = self.remaining.min(avail) as usize;
                // (A control frame may come between a message's fragments.)
                if self.lat_pos < LAT_OK && !self.keep_ctrl {
                    self.scan_sender(&data[i..i + take]);
                }
                if self.keep_ctrl {
                    self.ctrl_buf.extend_from_slice(&data[i..i + take]);
                } else if self.keep_data {
                    let room = KEEP_MAX.saturating_sub(self.data_buf.len()).min(take);
                    self.data_buf.extend_from_slice(&data[i..i + room]);
                }
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.in_payload = false;
                    self.end_frame()?;
                }
                continue;
            }
            if self.hdr_len == 0 && n - i >= 2 {
                // Fastest path (every chat delivery): a whole final text or
                // binary frame of less than 126 bytes, counted in place.
                let (b0, len) = (data[i], data[i + 1] as usize);
                if (b0 == 0x81 || b0 == 0x82) && len < 126 && n - i >= 2 + len && !self.inspect_data
                {
                    self.msgs += 1;
                    self.data_bytes += len as u64;
                    if b0 == 0x81 {
                        self.text_msgs += 1;
                    } else {
                        self.binary_msgs += 1;
                    }
                    if self.lat_on {
                        if let Some(k) = sender_of(&data[i + 2..i + 2 + len]) {
                            self.arrivals.push(k);
                        }
                    }
                    i += 2 + len;
                    continue;
                }
                // Fast path: the whole header is in this chunk.
                let need = header_len(data[i + 1]);
                if n - i >= need {
                    self.begin_frame(&data[i..i + need])?;
                    i += need;
                    continue;
                }
            }
            // Slow path: header split across reads.
            self.hdr[self.hdr_len] = data[i];
            self.hdr_len += 1;
            i += 1;
            if self.hdr_len >= 2 && self.hdr_len == header_len(self.hdr[1]) {
                let h = self.hdr;
                let len = self.hdr_len;
                self.hdr_len = 0;
                self.begin_frame(&h[..len])?;
            }
        }
        Ok(())
    }

    #[inline]
    fn begin_frame(&mut self, h: &[u8]) -> Result<(), String> {
        let b0 = h[0];
        let b1 = h[1];
        if b0 & 0x70 != 0 {
            return Err("server frame with RSV bits set".into());
        }
        if b1 & 0x80 != 0 {
            return Err("masked server frame".into());
        }
        let len: u64 = match b1 & 0x7f {
            126 => u16::from_be_bytes([h[2], h[3]]) as u64,
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            l => l as u64,
        };
        let op = b0 & 0x0f;
        let fin = b0 & 0x80 != 0;
        match op {
            0..=2 => {
                self.data_bytes += len;
                self.keep_ctrl = false;
                if op != 0 {
                    self.msg_op = op;
                    self.data_buf.clear();
                    self.lat_pos = if self.lat_on { 0 } else { LAT_NONE };
                    self.lat_k = 0;
                }
                self.keep_data = self.inspect_data;
            }
            8..=10 => {
                if !fin || len > 125 {
                    return Err("bad control frame from server".into());
                }
                self.keep_ctrl = true;
                self.keep_data = false;
                self.ctrl_buf.clear();
            }
            _ => return Err(format!("unknown opcode {op} from server")),
        }
        self.op = op;
        self.fin = fin;
        if len == 0 {
            self.end_frame()
        } else {
            self.remaining = len;
            self.in_payload = true;
            Ok(())
        }
    }

    #[inline]
    fn end_frame(&mut self) -> Result<(), String> {
        match self.op {
            0..=2 if self.fin => {
                self.msgs += 1;
                if self.lat_pos == LAT_OK {
                    self.arrivals.push(self.lat_k);
                }
                if self.msg_op == 1 {
                    self.text_msgs += 1;
                    if self.inspect_data && self.data_buf == b"ready" {
                        self.ready = true;
                    }
                } else {
                    self.binary_msgs += 1;
                }
            }
            8 => {
                self.peer_closed = true;
                self.close_code = if self.ctrl_buf.len() >= 2 {
                    u16::from_be_bytes([self.ctrl_buf[0], self.ctrl_buf[1]])
                } else {
                    1005
                };
                // Answer with a close frame echoing the code.
                let code = self.close_code.to_be_bytes();
                let payload: &[u8] = if self.close_code == 1005 { &[] } else { &code };
                push_frame(&mut self.out, 0x8, payload);
            }
            9 => {
                // Ping: answer with a pong carrying the same payload. It is
                // appended after any queued data, which keeps frames whole.
                let p = std::mem::take(&mut self.ctrl_buf);
                push_frame(&mut self.out, 0xA, &p);
                self.ctrl_buf = p;
            }
            _ => {} // pong
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------
// Syscall helpers
// ----------------------------------------------------------------------------

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn epoll_set(ep: i32, op: i32, fd: i32, events: u32, token: usize) -> Result<(), String> {
    let mut ev = libc::epoll_event {
        events,
        u64: token as u64,
    };
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(os_err("epoll_ctl"));
    }
    Ok(())
}

fn raise_nofile(want: u64) {
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < want {
            rl.rlim_cur = want.min(rl.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// (user, system) CPU seconds of this process.
fn own_cpu() -> (f64, f64) {
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (tv(ru.ru_utime), tv(ru.ru_stime))
    }
}

/// The common tail of every RESULT line: our own CPU use and syscall counts.
fn cpu_fields(g: &Gen, elapsed: f64) -> String {
    let (u, s) = own_cpu();
    format!(
        "loadgen_cpu_s={:.3} loadgen_user_s={u:.3} loadgen_sys_s={s:.3} loadgen_cpu_frac={:.2} \
         recvs={} recv_bytes={} sends={} waits={}",
        u + s,
        if elapsed > 0.0 {
            (u + s) / elapsed
        } else {
            0.0
        },
        g.recvs,
        g.recv_bytes,
        g.sends,
        g.waits
    )
}

fn sockaddr(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    }
}

// ----------------------------------------------------------------------------
// The generator
// ----------------------------------------------------------------------------

struct Gen {
    o: Opts,
    ep: i32,
    conns: Vec<Conn>,
    rbuf: Vec<u8>,
    next_open: usize,
    pending: usize,
    open: usize,
    /// Bytes of the HTTP upgrade request up to the client number.
    req_head: Vec<u8>,
    req_tail: Vec<u8>,
    stopping: bool,
    recvs: u64,
    recv_bytes: u64,
    sends: u64,
    waits: u64,
    /// Chat: delivery latency (set by `run_chat`).
    lat: Option<ChatLatency>,
}

impl Gen {
    fn new(o: Opts) -> Result<Gen, String> {
        raise_nofile(o.clients as u64 + 64);
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(os_err("epoll_create1"));
        }
        let host = format!(
            "{}.{}.{}.{}:{}",
            o.host[0], o.host[1], o.host[2], o.host[3], o.port
        );
        let req_head = b"GET /?name=Client".to_vec();
        let req_tail = format!(
            " HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        let mut conns = Vec::with_capacity(o.clients);
        for _ in 0..o.clients {
            conns.push(Conn::new());
        }
        Ok(Gen {
            o,
            ep,
            conns,
            rbuf: vec![0u8; RBUF],
            next_open: 0,
            pending: 0,
            open: 0,
            req_head,
            req_tail,
            stopping: false,
            recvs: 0,
            recv_bytes: 0,
            sends: 0,
            waits: 0,
            lat: None,
        })
    }

    /// Starts connections until `max_pending` are in flight.
    fn open_more(&mut self) -> Result<(), String> {
        while self.next_open < self.o.clients && self.pending < self.o.max_pending {
            let idx = self.next_open;
            self.next_open += 1;
            self.start_connect(idx)?;
        }
        Ok(())
    }

    fn start_connect(&mut self, idx: usize) -> Result<(), String> {
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(os_err("socket"));
        }
        let one: libc::c_int = 1;
        let sz = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &one as *const _ as *const _,
                sz,
            );
        }
        if self.o.sources > 1 {
            // Spread over 127.0.0.1 .. 127.0.0.K so the ephemeral port range
            // of one source address is not exhausted; the port is chosen at
            // connect() time (IP_BIND_ADDRESS_NO_PORT).
            let src = [127, 0, 0, 1 + (idx % self.o.sources) as u8];
            let sa = sockaddr(src, 0);
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    &one as *const _ as *const _,
                    sz,
                );
                if libc::bind(
                    fd,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa) as u32,
                ) != 0
                {
                    let e = os_err("bind");
                    libc::close(fd);
                    return Err(e);
                }
            }
        }
        let sa = sockaddr(self.o.host, self.o.ports[idx % self.o.ports.len()]);
        let r = unsafe {
            libc::connect(
                fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&sa) as u32,
            )
        };
        if r != 0 && errno() != libc::EINPROGRESS {
            let e = os_err("connect");
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let c = &mut self.conns[idx];
        c.fd = fd;
        c.st = St::Connecting;
        c.want_out = true;
        self.pending += 1;
        epoll_set(
            self.ep,
            libc::EPOLL_CTL_ADD,
            fd,
            (libc::EPOLLIN | libc::EPOLLOUT) as u32,
            idx,
        )
    }

    /// Writes as much of the connection's output as the socket takes.
    fn flush(ep: i32, idx: usize, c: &mut Conn, sends: &mut u64) -> Result<(), String> {
        while c.out_pos < c.out.len() {
            let rest = &c.out[c.out_pos..];
            *sends += 1;
            let started = c.track_sends.then(now_ns);
            let r = unsafe {
                libc::send(
                    c.fd,
                    rest.as_ptr() as *const _,
                    rest.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if r > 0 {
                c.out_pos += r as usize;
                if let Some(t) = started {
                    c.marks.push((c.out_pos as u64, t));
                }
                continue;
            }
            let e = errno();
            if r < 0 && e == libc::EINTR {
                continue;
            }
            if r < 0 && (e == libc::EAGAIN || e == libc::EWOULDBLOCK) {
                if !c.want_out {
                    c.want_out = true;
                    epoll_set(
                        ep,
                        libc::EPOLL_CTL_MOD,
                        c.fd,
                        (libc::EPOLLIN | libc::EPOLLOUT) as u32,
                        idx,
                    )?;
                }
                return Ok(());
            }
            return Err(os_err(&format!("send (client {idx})")));
        }
        c.out.clear();
        c.out_pos = 0;
        if c.want_out {
            c.want_out = false;
            epoll_set(ep, libc::EPOLL_CTL_MOD, c.fd, libc::EPOLLIN as u32, idx)?;
        }
        Ok(())
    }

    /// Handles one epoll event. Returns true when the connection just
    /// finished its WebSocket handshake.
    fn on_event(&mut self, idx: usize, events: u32) -> Result<bool, String> {
        let ep = self.ep;
        let mut opened = false;
        let st = self.conns[idx].st;
        if st == St::Closed || st == St::NotStarted {
            return Ok(false);
        }
        if st == St::Connecting {
            let c = &mut self.conns[idx];
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            unsafe {
                libc::getsockopt(
                    c.fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    &mut err as *mut _ as *mut _,
                    &mut len,
                );
            }
            if err != 0 {
                return Err(format!(
                    "connect (client {idx}): {}",
                    std::io::Error::from_raw_os_error(err)
                ));
            }
            if events & (libc::EPOLLOUT as u32) == 0 {
                return Ok(false);
            }
            if self.o.mode == Mode::Http {
                // Open as soon as connected (flushing nothing stops EPOLLOUT).
                c.st = St::Open;
                Self::flush(ep, idx, c, &mut self.sends)?;
                return Ok(true);
            }
            c.st = St::Handshake;
            c.out.extend_from_slice(&self.req_head);
            c.out.extend_from_slice(idx.to_string().as_bytes());
            c.out.extend_from_slice(&self.req_tail);
            Self::flush(ep, idx, c, &mut self.sends)?;
            return Ok(false);
        }
        if events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
            let http = self.o.mode == Mode::Http;
            let Gen {
                conns,
                rbuf,
                recvs,
                recv_bytes,
                lat,
                ..
            } = self;
            loop {
                let c = &mut conns[idx];
                *recvs += 1;
                let r = unsafe { libc::recv(c.fd, rbuf.as_mut_ptr() as *mut _, rbuf.len(), 0) };
                if r > 0 {
                    *recv_bytes += r as u64;
                    let data = &rbuf[..r as usize];
                    if c.st == St::Handshake {
                        if Self::handshake_bytes(c, data, idx)? {
                            opened = true;
                        }
                    } else if http {
                        c.feed_http(data)?;
                    } else {
                        c.feed(data)?;
                        if let Some(lat) = lat.as_mut().filter(|_| !c.arrivals.is_empty()) {
                            let at = now_ns();
                            let arrivals = std::mem::take(&mut c.arrivals);
                            for &k in &arrivals {
                                let k = k as usize;
                                let marks = conns.get(k).map_or(&[][..], |s| &s.marks[..]);
                                lat.record(idx, k, at, marks);
                            }
                            let c = &mut conns[idx];
                            c.arrivals = arrivals;
                            c.arrivals.clear();
                        }
                    }
                    if (r as usize) < rbuf.len() {
                        break;
                    }
                    continue;
                }
                if r == 0 {
                    c.st = St::Closed;
                    unsafe { libc::close(c.fd) };
                    if c.peer_closed || self.stopping {
                        return Ok(opened);
                    }
                    return Err(format!(
                        "server closed connection of client {idx} (state {st:?})"
                    ));
                }
                let e = errno();
                if e == libc::EINTR {
                    continue;
                }
                if e == libc::EAGAIN || e == libc::EWOULDBLOCK {
                    break;
                }
                return Err(os_err(&format!("recv (client {idx})")));
            }
        }
        let c = &mut self.conns[idx];
        if c.out_pos < c.out.len() {
            Self::flush(ep, idx, c, &mut self.sends)?;
        }
        if c.peer_closed && !self.stopping {
            return Err(format!(
                "server sent close (code {}) to client {idx}",
                c.close_code
            ));
        }
        Ok(opened)
    }

    /// Accumulates the HTTP response; on the end of headers checks for 101
    /// and feeds any following bytes to the frame parser.
    fn handshake_bytes(c: &mut Conn, data: &[u8], idx: usize) -> Result<bool, String> {
        c.hs.extend_from_slice(data);
        let end = match c.hs.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(p) => p + 4,
            None => {
                if c.hs.len() > 16 * 1024 {
                    return Err(format!("client {idx}: oversized HTTP response"));
                }
                return Ok(false);
            }
        };
        let hs = std::mem::take(&mut c.hs);
        let head = &hs[..end];
        if !(head.starts_with(b"HTTP/1.1 101") || head.starts_with(b"HTTP/1.0 101")) {
            let line = head.split(|&b| b == b'\r').next().unwrap_or(b"");
            return Err(format!(
                "client {idx}: upgrade refused: {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
        if !lower.contains("\r\nsec-websocket-accept:") {
            return Err(format!("client {idx}: 101 without Sec-WebSocket-Accept"));
        }
        c.st = St::Open;
        c.feed(&hs[end..])?;
        Ok(true)
    }

    fn wait(&mut self, events: &mut [libc::epoll_event], timeout_ms: i32) -> Result<usize, String> {
        loop {
            self.waits += 1;
            let n = unsafe {
                libc::epoll_wait(
                    self.ep,
                    events.as_mut_ptr(),
                    events.len() as i32,
                    timeout_ms,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            if errno() != libc::EINTR {
                return Err(os_err("epoll_wait"));
            }
        }
    }

    /// Connects every client and waits for their upgrades (and, when
    /// `need_ready`, for the text message `ready` on each).
    fn connect_all(&mut self, need_ready: bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.o.connect_timeout);
        for c in self.conns.iter_mut() {
            c.inspect_data = need_ready;
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut ready = 0usize;
        self.open_more()?;
        loop {
            if self.open == self.o.clients && (!need_ready || ready == self.o.clients) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "timed out after {}s: {} of {} connections open, {} saw ready",
                    self.o.connect_timeout, self.open, self.o.clients, ready
                ));
            }
            let ms = (deadline - now).as_millis().min(100) as i32;
            let n = self.wait(&mut events, ms.max(1))?;
            for e in &events[..n] {
                let (ev, idx) = (e.events, e.u64 as usize);
                if self.on_event(idx, ev)? {
                    self.pending -= 1;
                    self.open += 1;
                }
                let c = &mut self.conns[idx];
                if c.ready && c.inspect_data {
                    c.inspect_data = false;
                    ready += 1;
                }
            }
            self.open_more()?;
        }
        for c in self.conns.iter_mut() {
            if c.msgs != need_ready as u64 {
                return Err("unexpected messages before the run".into());
            }
            c.msgs = 0;
            c.data_bytes = 0;
            c.text_msgs = 0;
            c.binary_msgs = 0;
            c.inspect_data = false;
        }
        Ok(())
    }

    fn close_all(&mut self) {
        self.stopping = true;
        for c in self.conns.iter_mut() {
            if c.st != St::Closed && c.st != St::NotStarted {
                unsafe { libc::close(c.fd) };
                c.st = St::Closed;
            }
        }
    }
}

// ----------------------------------------------------------------------------
// Per-second statistics
// ----------------------------------------------------------------------------

struct Ticker {
    start: Instant,
    next: Instant,
    last_count: u64,
    rates: Vec<f64>,
    quiet: bool,
    label: &'static str,
}

impl Ticker {
    fn new(label: &'static str, quiet: bool) -> Ticker {
        let now = Instant::now();
        Ticker {
            start: now,
            next: now + Duration::from_secs(1),
            last_count: 0,
            rates: Vec::new(),
            quiet,
            label,
        }
    }

    /// Records every whole second that elapsed; returns ms until the next tick.
    fn poll(&mut self, now: Instant, count: u64) -> i32 {
        while now >= self.next {
            let rate = (count - self.last_count) as f64;
            self.last_count = count;
            self.rates.push(rate);
            if !self.quiet {
                eprintln!(
                    "  t={:>3}s {} {:>12.0}/s",
                    self.rates.len(),
                    self.label,
                    rate
                );
            }
            self.next += Duration::from_secs(1);
        }
        (self.next - now).as_millis() as i32 + 1
    }

    /// (median, min, max) over whole seconds; the overall mean if the run was
    /// shorter than one second.
    fn summary(&self, total: u64, elapsed: f64) -> (f64, f64, f64) {
        if self.rates.is_empty() {
            let r = if elapsed > 0.0 {
                total as f64 / elapsed
            } else {
                0.0
            };
            return (r, r, r);
        }
        let mut v = self.rates.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let m = v.len();
        let med = if m % 2 == 1 {
            v[m / 2]
        } else {
            (v[m / 2 - 1] + v[m / 2]) / 2.0
        };
        (med, v[0], v[m - 1])
    }
}

// ----------------------------------------------------------------------------
// Modes
// ----------------------------------------------------------------------------

fn run_chat(mut g: Gen) -> Result<(), String> {
    let n = g.o.clients;
    g.connect_all(true)?;
    let per_client: u64 = (n * CHAT_LINES.len() * CHAT_REPEAT) as u64;
    let per_batch: u64 = per_client * n as u64;
    // Every client receives every client's batch as "ClientK: line".
    let lines_bytes: u64 =
        CHAT_LINES.iter().map(|l| l.len() as u64).sum::<u64>() * CHAT_REPEAT as u64;
    let per_sender = (CHAT_LINES.len() * CHAT_REPEAT) as u64;
    let bytes_per_client: u64 = (0..n)
        .map(|k| (format!("Client{k}: ").len() as u64) * per_sender + lines_bytes)
        .sum();

    // One batch of client frames, built once; every client sends the same bytes.
    let mut batch = Vec::new();
    let mut frame_end = Vec::with_capacity(CHAT_LINES.len() * CHAT_REPEAT);
    for _ in 0..CHAT_REPEAT {
        for line in CHAT_LINES.iter() {
            push_frame(&mut batch, 0x1, line.as_bytes());
            frame_end.push(batch.len() as u64);
        }
    }
    g.lat = Some(ChatLatency::new(n, frame_end));
    for c in g.conns.iter_mut() {
        c.track_sends = true;
        c.lat_on = true;
    }

    let limit = match (g.o.seconds, g.o.batches) {
        (Some(s), _) => s,
        (None, Some(_)) => 600.0,
        (None, None) => 10.0,
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut ticker = Ticker::new("deliveries", g.o.quiet);
    let start = ticker.start;
    let deadline = start + Duration::from_secs_f64(limit);
    let ep = g.ep;

    let mut deliveries: u64 = 0;
    let mut batches_done: u64 = 0;
    let mut done_clients = 0usize;
    let mut last_progress = start;
    let mut stalled = false;

    // Start batch 1.
    for (idx, c) in g.conns.iter_mut().enumerate() {
        c.marks.clear();
        c.out.extend_from_slice(&batch);
        Gen::flush(ep, idx, c, &mut g.sends)?;
    }
    loop {
        let now = Instant::now();
        let wait_ms = ticker.poll(now, deliveries);
        if now >= deadline {
            break;
        }
        let to_deadline = (deadline - now).as_millis() as i32 + 1;
        let got = g.wait(&mut events, wait_ms.min(to_deadline))?;
        if got == 0 && now.duration_since(last_progress) > Duration::from_secs(10) && !stalled {
            stalled = true;
            eprintln!("loadgen: warning: no deliveries for 10 s (messages dropped by the server?)");
        }
        for e in &events[..got] {
            let (ev, idx) = (e.events, e.u64 as usize);
            g.on_event(idx, ev)?;
            let c = &mut g.conns[idx];
            let m = c.msgs;
            if m > 0 {
                c.msgs = 0;
                deliveries += m;
                c.batch_recv += m;
                if c.batch_recv >= per_client && !c.batch_done {
                    if c.batch_recv > per_client {
                        return Err(format!(
                            "client {idx} received more messages than the batch holds"
                        ));
                    }
                    if c.data_bytes != bytes_per_client {
                        return Err(format!(
                            "client {idx} received {} payload bytes in a batch, expected {bytes_per_client} \
                             (messages not of the form \"ClientK: msg\"?)",
                            c.data_bytes
                        ));
                    }
                    c.data_bytes = 0;
                    c.batch_done = true;
                    done_clients += 1;
                }
            }
        }
        if got > 0 {
            last_progress = Instant::now();
        }
        if done_clients == n {
            batches_done += 1;
            done_clients = 0;
            if Some(batches_done) == g.o.batches {
                break;
            }
            if let Some(lat) = g.lat.as_mut() {
                lat.reset();
            }
            for (idx, c) in g.conns.iter_mut().enumerate() {
                c.batch_recv = 0;
                c.batch_done = false;
                c.marks.clear();
                c.out.extend_from_slice(&batch);
                Gen::flush(ep, idx, c, &mut g.sends)?;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let text: u64 = g.conns.iter().map(|c| c.text_msgs).sum();
    if text != deliveries {
        return Err(format!(
            "{} of {} deliveries were not text",
            deliveries - text,
            deliveries
        ));
    }
    if let Some(b) = g.o.batches {
        if batches_done != b {
            return Err(format!(
                "time limit reached after {batches_done} of {b} batches"
            ));
        }
    }
    g.close_all();
    let (med, min, max) = ticker.summary(deliveries, elapsed);
    println!(
        "RESULT mode=chat clients={n} batches={batches_done} deliveries={deliveries} per_batch={per_batch} \
         seconds={elapsed:.3} rate={:.0} rate_median={med:.0} rate_min={min:.0} rate_max={max:.0} \
         intervals={} {} {}",
        deliveries as f64 / elapsed,
        ticker.rates.len(),
        g.lat.as_ref().map_or(String::new(), |l| l.hist.fields()),
        cpu_fields(&g, elapsed)
    );
    Ok(())
}

/// The timed part of a closed-loop mode (echo, http): every connection
/// keeps `k` copies of `unit` in flight, writing one more for each answer,
/// until the time limit or `--messages` answers. Returns the answers, the
/// seconds taken and the per-second rates.
fn closed_loop(
    g: &mut Gen,
    unit: &[u8],
    k: usize,
    label: &'static str,
) -> Result<(u64, f64, Ticker), String> {
    let limit = match (g.o.seconds, g.o.messages) {
        (Some(s), _) => s,
        (None, Some(_)) => 600.0,
        (None, None) => 10.0,
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut ticker = Ticker::new(label, g.o.quiet);
    let start = ticker.start;
    let deadline = start + Duration::from_secs_f64(limit);
    let ep = g.ep;
    let mut answers: u64 = 0;
    let target = g.o.messages.unwrap_or(u64::MAX);

    for (idx, c) in g.conns.iter_mut().enumerate() {
        for _ in 0..k {
            c.out.extend_from_slice(unit);
        }
        Gen::flush(ep, idx, c, &mut g.sends)?;
    }
    'run: loop {
        let now = Instant::now();
        let wait_ms = ticker.poll(now, answers);
        if now >= deadline {
            break;
        }
        let to_deadline = (deadline - now).as_millis() as i32 + 1;
        let got = g.wait(&mut events, wait_ms.min(to_deadline))?;
        for e in &events[..got] {
            let (ev, idx) = (e.events, e.u64 as usize);
            g.on_event(idx, ev)?;
            let c = &mut g.conns[idx];
            let m = c.msgs;
            if m > 0 {
                c.msgs = 0;
                answers += m;
                if answers >= target {
                    answers = target;
                    break 'run;
                }
                for _ in 0..m {
                    c.out.extend_from_slice(unit);
                }
                Gen::flush(ep, idx, c, &mut g.sends)?;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(m) = g.o.messages {
        if answers < m {
            return Err(format!("time limit reached after {answers} of {m} {label}"));
        }
    }
    Ok((answers, elapsed, ticker))
}

fn run_echo(mut g: Gen) -> Result<(), String> {
    let n = g.o.clients;
    let k = g.o.inflight.max(1);
    g.connect_all(false)?;
    let payload: Vec<u8> = (0..g.o.size).map(|i| (i * 7 + 13) as u8).collect();
    let mut frame = Vec::new();
    push_frame(&mut frame, 0x2, &payload);
    let (echoes, elapsed, ticker) = closed_loop(&mut g, &frame, k, "echoes")?;
    let text: u64 = g.conns.iter().map(|c| c.text_msgs).sum();
    if text != 0 {
        return Err(format!("{text} echoes came back as text, expected binary"));
    }
    g.close_all();
    let (med, min, max) = ticker.summary(echoes, elapsed);
    println!(
        "RESULT mode=echo clients={n} inflight={k} size={} messages={echoes} seconds={elapsed:.3} \
         rate={:.0} rate_median={med:.0} rate_min={min:.0} rate_max={max:.0} intervals={} {}",
        g.o.size,
        echoes as f64 / elapsed,
        ticker.rates.len(),
        cpu_fields(&g, elapsed)
    );
    Ok(())
}

fn run_idle(mut g: Gen) -> Result<(), String> {
    let n = g.o.clients;
    let t0 = Instant::now();
    g.connect_all(false)?;
    let connect_s = t0.elapsed().as_secs_f64();
    // Tell a driving script that everything is open (stdout, flushed).
    println!("HOLDING connections={n} connect_seconds={connect_s:.3}");
    let _ = std::io::stdout().flush();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let deadline = Instant::now() + Duration::from_secs_f64(g.o.hold);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let ms = (deadline - now).as_millis() as i32 + 1;
        let got = g.wait(&mut events, ms)?;
        for e in &events[..got] {
            let (ev, idx) = (e.events, e.u64 as usize);
            g.on_event(idx, ev)?;
            let c = &mut g.conns[idx];
            if c.msgs > 0 {
                return Err(format!("client {idx}: unexpected message while idle"));
            }
        }
    }
    let still_open = g.conns.iter().filter(|c| c.st == St::Open).count();
    g.close_all();
    println!(
        "RESULT mode=idle clients={n} open={still_open} sources={} connect_seconds={connect_s:.3} \
         hold_seconds={:.1} {}",
        g.o.sources,
        g.o.hold,
        cpu_fields(&g, t0.elapsed().as_secs_f64())
    );
    if still_open != n {
        return Err(format!(
            "only {still_open} of {n} connections survived the hold"
        ));
    }
    Ok(())
}

fn main() {
    let o = parse_opts();
    let mode = o.mode;
    let g = match Gen::new(o) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    let r = match mode {
        Mode::Chat => run_chat(g),
        Mode::Echo => run_echo(g),
        Mode::Idle => run_idle(g),
        Mode::Http => http::run_http(g),
    };
    if let Err(e) = r {
        eprintln!("loadgen: error: {e}");
        std::process::exit(1);
    }
}

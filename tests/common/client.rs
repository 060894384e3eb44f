//! Client-side test harness: a scripted `ClientHandler` that logs every
//! event, run on a thread of its own with bounded waits.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uws::{ClientHandle, ClientHandler, ClientWebSocket, ConnectOptions, Error, Message};

use super::probe::EventLog;
use super::TIMEOUT;

/// What a scripted connection does.
#[derive(Clone, Default)]
pub struct Script {
    /// Texts sent on open, in order.
    pub send: Vec<String>,
    /// Close with 1000 after this many messages.
    pub close_after: Option<usize>,
    /// Answer every message with the same message.
    pub echo: bool,
}

/// Per-connection data that counts its drops.
pub struct Conn {
    pub received: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Logs `open:PROTOCOL`, `message:TEXT`, `binary:LEN`, `ping:..`,
/// `pong:..`, `close:CODE:REASON` and `error:MESSAGE` (with the connection's
/// ready state for errors: `error-state:N`).
#[derive(Clone)]
pub struct Recorder {
    pub log: EventLog,
    pub script: Script,
    pub drops: Arc<AtomicUsize>,
    /// Every error, in `Debug` form.
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn new(script: Script) -> Recorder {
        Recorder {
            log: EventLog::default(),
            script,
            drops: Arc::default(),
            errors: Arc::default(),
        }
    }

    pub fn data(&self) -> Conn {
        Conn {
            received: 0,
            drops: self.drops.clone(),
        }
    }

    pub fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

impl ClientHandler for Recorder {
    type Data = Conn;

    fn open(&self, ws: &mut ClientWebSocket<Conn>) {
        self.log
            .push(format!("open:{}", ws.protocol().unwrap_or("")));
        for text in &self.script.send {
            ws.send_text(text);
        }
    }

    fn message(&self, ws: &mut ClientWebSocket<Conn>, message: Message<'_>) {
        match message {
            Message::Text(t) => self.log.push(format!("message:{t}")),
            Message::Binary(b) => self.log.push(format!("binary:{}", b.len())),
        }
        if self.script.echo {
            ws.send(message);
        }
        ws.data_mut().received += 1;
        if Some(ws.data().received) == self.script.close_after {
            let _ = ws.close(1000, "done");
        }
    }

    fn close(&self, _ws: &mut ClientWebSocket<Conn>, code: u16, reason: &str) {
        self.log.push(format!("close:{code}:{reason}"));
    }

    fn ping(&self, _ws: &mut ClientWebSocket<Conn>, data: &[u8]) {
        self.log
            .push(format!("ping:{}", String::from_utf8_lossy(data)));
    }

    fn pong(&self, _ws: &mut ClientWebSocket<Conn>, data: &[u8]) {
        self.log
            .push(format!("pong:{}", String::from_utf8_lossy(data)));
    }

    fn error(&self, ws: Option<&mut ClientWebSocket<Conn>>, error: &Error) {
        if let Some(ws) = ws {
            self.log
                .push(format!("error-state:{}", ws.ready_state().to_bun()));
        }
        self.log.push(format!("error:{error}"));
        self.errors.lock().unwrap().push(format!("{error:#?}"));
    }
}

/// A client on a thread of its own: `connect`, then `run` until the loop
/// has nothing left.
pub struct RunningClient {
    pub handle: ClientHandle<Conn>,
    thread: Option<JoinHandle<()>>,
}

impl RunningClient {
    /// Waits (bounded) for the client's loop to end.
    pub fn join(mut self) {
        self.wait();
    }

    fn wait(&mut self) {
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + TIMEOUT;
            while !t.is_finished() {
                assert!(Instant::now() < deadline, "client did not finish in time");
                std::thread::sleep(Duration::from_millis(5));
            }
            t.join().expect("client thread panicked");
        }
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = self.handle.terminate();
            self.wait();
        }
    }
}

/// Connects with `recorder` on a new thread and runs its loop there.
pub fn spawn(url: &str, options: ConnectOptions, recorder: &Recorder) -> RunningClient {
    let (tx, rx) = mpsc::channel();
    let (url, recorder) = (url.to_string(), recorder.clone());
    let thread = std::thread::spawn(move || {
        let data = recorder.data();
        let handle = uws::connect(&url, options, recorder, data).expect("connect");
        tx.send(handle).unwrap();
        uws::run();
    });
    let handle = rx.recv_timeout(TIMEOUT).expect("client did not start");
    RunningClient {
        handle,
        thread: Some(thread),
    }
}

/// Runs one scripted connection to the end and returns its events.
pub fn run_to_end(url: &str, options: ConnectOptions, script: Script) -> Vec<String> {
    let recorder = Recorder::new(script);
    spawn(url, options, &recorder).join();
    assert_eq!(recorder.drops(), 1, "the data is dropped exactly once");
    recorder.log.events()
}

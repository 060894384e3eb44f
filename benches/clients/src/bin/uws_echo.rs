//! Client echo load: N connections of ours, each keeping K messages in
//! flight against an echo server; one thread, one loop.

#[path = "../common.rs"]
mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use uws::{ClientHandler, ClientWebSocket, ConnectOptions, Error, Message};

struct Load {
    inflight: usize,
    payload: Rc<Vec<u8>>,
    count: Rc<Cell<u64>>,
    rates: Rc<RefCell<common::Rates>>,
    seconds: u64,
    done: Rc<Cell<bool>>,
}

impl ClientHandler for Load {
    type Data = ();

    fn open(&self, ws: &mut ClientWebSocket<()>) {
        for _ in 0..self.inflight {
            ws.send_binary(&self.payload);
        }
    }

    fn message(&self, ws: &mut ClientWebSocket<()>, message: Message<'_>) {
        let n = self.count.get() + 1;
        self.count.set(n);
        if self.done.get() {
            let _ = ws.close(1000, "");
            return;
        }
        if n % 4096 == 0 && self.rates.borrow_mut().tick(n, self.seconds) {
            self.done.set(true);
        }
        ws.send(message);
    }

    fn error(&self, _ws: Option<&mut ClientWebSocket<()>>, error: &Error) {
        eprintln!("uws_echo: {error}");
        std::process::exit(1);
    }
}

fn main() {
    let a = common::args();
    let count = Rc::new(Cell::new(0));
    let rates = Rc::new(RefCell::new(common::Rates::new()));
    let done = Rc::new(Cell::new(false));
    let payload = Rc::new(vec![b'x'; a.size]);
    let url = format!("ws://127.0.0.1:{}/", a.port);
    for _ in 0..a.clients {
        let load = Load {
            inflight: a.inflight,
            payload: payload.clone(),
            count: count.clone(),
            rates: rates.clone(),
            seconds: a.seconds,
            done: done.clone(),
        };
        uws::connect(&url, ConnectOptions::default(), load, ()).expect("connect");
    }
    uws::run();
    rates.borrow().report(&a, count.get());
}

//! Client echo load with tokio-tungstenite: N connections, each keeping K
//! messages in flight; a single-threaded runtime, as the others have one
//! loop.

#[path = "../common.rs"]
mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = common::args();
    let count = Rc::new(Cell::new(0u64));
    let rates = Rc::new(RefCell::new(common::Rates::new()));
    let done = Rc::new(Cell::new(false));
    let url = format!("ws://127.0.0.1:{}/", a.port);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tasks = Vec::new();
            for _ in 0..a.clients {
                let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .expect("connect");
                let (count, rates, done) = (count.clone(), rates.clone(), done.clone());
                let (inflight, size, seconds) = (a.inflight, a.size, a.seconds);
                tasks.push(tokio::task::spawn_local(async move {
                    let (mut tx, mut rx) = ws.split();
                    let payload = vec![b'x'; size];
                    for _ in 0..inflight {
                        tx.feed(Message::binary(payload.clone())).await.unwrap();
                    }
                    tx.flush().await.unwrap();
                    while let Some(Ok(m)) = rx.next().await {
                        if !m.is_binary() {
                            continue;
                        }
                        let n = count.get() + 1;
                        count.set(n);
                        if done.get() {
                            break;
                        }
                        if n % 4096 == 0 && rates.borrow_mut().tick(n, seconds) {
                            done.set(true);
                        }
                        tx.send(m).await.unwrap();
                    }
                    let _ = tx.close().await;
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    rates.borrow().report(&a, count.get());
}

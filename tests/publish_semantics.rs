//! `ws.publish` as Bun defines it: the sender never gets its own message
//! (unless `publish_to_self`), whatever the size, also when it is the
//! topic's only subscriber; the status says `NoSubscribers` when nobody
//! else got it; and a publish from the `close` handler reaches the topic's
//! other subscribers (Bun's "has left the chat").
mod common;

use std::sync::{Arc, Mutex};

use common::{accept_upgrade, connect, recv_text, start, wait_for, Client};
use tungstenite::Message as M;
use uws::{
    Message, Request, Response, Server, ServerWebSocket, WebSocketHandler, WebSocketOptions,
};

/// Commands: `sub T` (answers `subscribed`), `pub T N` (publishes N bytes
/// of `x` to T and answers with the status), `mark` (answers `mark`).
/// On close it publishes `left` to `room` and logs the status.
#[derive(Clone, Default)]
struct Chat {
    log: Arc<Mutex<Vec<String>>>,
}

impl WebSocketHandler for Chat {
    type Data = ();

    fn fetch(&self, req: &mut Request<'_>, server: &Server<()>) -> Response {
        accept_upgrade(req, server)
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let words: Vec<&str> = text.split(' ').collect();
        match words[..] {
            ["sub", topic] => {
                ws.subscribe(topic);
                ws.send_text("subscribed");
            }
            ["pub", topic, n] => {
                let payload = "x".repeat(n.parse().unwrap());
                let status = ws.publish_text(topic, &payload);
                ws.send_text(&format!("status {status:?}"));
            }
            ["mark"] => {
                ws.send_text("mark");
            }
            _ => {}
        }
    }

    fn close(&self, ws: &mut ServerWebSocket<()>, _code: u16, _reason: &str) {
        let status = ws.publish_text("room", "left");
        self.log
            .lock()
            .unwrap()
            .push(format!("close-publish {status:?}"));
    }
}

fn ask(client: &mut Client, command: &str) -> String {
    client.send(M::text(command)).unwrap();
    recv_text(client)
}

/// What the only subscriber of a topic sees after publishing `n` bytes to
/// it: the status, then the next message (the marker unless its own
/// message came back).
fn only_subscriber_publishes(n: usize) -> (String, String) {
    let server = start(WebSocketOptions::default(), Chat::default());
    let mut a = connect(&server.url("/"));
    assert_eq!(ask(&mut a, "sub solo"), "subscribed");
    let status = ask(&mut a, &format!("pub solo {n}"));
    (status, ask(&mut a, "mark"))
}

#[test]
fn the_only_subscriber_does_not_get_its_own_small_publish() {
    let (status, next) = only_subscriber_publishes(5);
    assert_eq!(status, "status NoSubscribers");
    assert_eq!(next, "mark", "the sender got its own message");
}

#[test]
fn the_only_subscriber_does_not_get_its_own_big_publish() {
    let (status, next) = only_subscriber_publishes(20_000);
    assert_eq!(status, "status NoSubscribers");
    assert_eq!(next, "mark", "the sender got its own message");
}

#[test]
fn big_and_small_publishes_reach_the_others_but_not_the_sender() {
    let server = start(WebSocketOptions::default(), Chat::default());
    let mut a = connect(&server.url("/"));
    let mut b = connect(&server.url("/"));
    assert_eq!(ask(&mut a, "sub room"), "subscribed");
    assert_eq!(ask(&mut b, "sub room"), "subscribed");
    for n in [5usize, 20_000] {
        assert_eq!(
            ask(&mut a, &format!("pub room {n}")),
            format!("status Published({n})")
        );
        assert_eq!(recv_text(&mut b).len(), n);
        assert_eq!(ask(&mut a, "mark"), "mark");
    }
}

#[test]
fn a_publish_from_the_close_handler_reaches_the_other_subscribers() {
    let chat = Chat::default();
    let server = start(WebSocketOptions::default(), chat.clone());
    let mut a = connect(&server.url("/"));
    let mut b = connect(&server.url("/"));
    assert_eq!(ask(&mut a, "sub room"), "subscribed");
    assert_eq!(ask(&mut b, "sub room"), "subscribed");
    a.close(None).unwrap();
    assert_eq!(recv_text(&mut b), "left");
    wait_for("a's close handler", || !chat.log.lock().unwrap().is_empty());
    assert_eq!(chat.log.lock().unwrap()[0], "close-publish Published(4)");
    // The last one to leave has nobody to tell.
    drop(a);
    b.close(None).unwrap();
    wait_for("b's close handler", || chat.log.lock().unwrap().len() == 2);
    assert_eq!(chat.log.lock().unwrap()[1], "close-publish NoSubscribers");
}

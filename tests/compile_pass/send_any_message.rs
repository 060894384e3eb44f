//! Every sending and publishing method takes each kind of message in one
//! argument (issue: owned strings were refused and `compress` was
//! mandatory), and compression is the `_compressed` twin.
use std::borrow::Cow;
use uws::*;

struct Chat;

impl WebSocketHandler for Chat {
    type Data = ();

    fn fetch(&self, _: &mut Request<'_>, _: &Server<()>) -> Response {
        Response::new("")
    }

    fn message(&self, ws: &mut ServerWebSocket<()>, message: Message<'_>) {
        let s = String::from("text");
        let v = vec![1u8, 2, 3];
        let owned = OwnedMessage::from("owned");
        // ws.send(msg)
        ws.send("literal");
        ws.send(&s);
        ws.send(s.clone());
        ws.send(format!("{} users", 3));
        ws.send(&v[..]);
        ws.send(&v);
        ws.send(v.clone());
        ws.send(b"bytes");
        ws.send([1u8, 2]);
        ws.send(message);
        ws.send(&owned);
        ws.send(owned.clone());
        ws.send(Box::<str>::from("boxed"));
        ws.send(Cow::Borrowed("cow"));
        ws.send(Cow::<[u8]>::Owned(vec![1]));
        // ws.send(msg, true)
        ws.send_compressed("literal");
        ws.send_compressed(s.clone());
        ws.send_compressed(v.clone());
        ws.send_compressed(message);
        // ws.publish(topic, msg) / ws.publish(topic, msg, true)
        ws.publish("room", "literal");
        ws.publish("room", &s);
        ws.publish("room", s.clone());
        ws.publish("room", &v[..]);
        ws.publish("room", v.clone());
        ws.publish("room", message);
        ws.publish("room", owned.clone());
        ws.publish_compressed("room", format!("{}", 1));
        // server.publish / server.send by id
        let id = ws.id();
        let server = ws.server();
        server.publish("room", "literal");
        server.publish("room", &s);
        server.publish("room", s.clone());
        server.publish("room", &v[..]);
        server.publish("room", v.clone());
        server.publish("room", message);
        server.publish("room", owned.clone());
        server.publish_compressed("room", "literal");
        server.send(id, "literal");
        server.send(id, s.clone());
        server.send(id, &v);
        server.send(id, message);
        server.send_compressed(id, v.clone());
        // from another thread: the handle
        let handle = server.handle();
        let _ = handle.publish("room", "literal");
        let _ = handle.publish("room", &s);
        let _ = handle.publish("room", s.clone());
        let _ = handle.publish(String::from("room"), &v[..]);
        let _ = handle.publish("room", v.clone());
        let _ = handle.publish("room", message);
        let _ = handle.publish("room", owned.clone());
        let _ = handle.publish_compressed("room", "literal");
        let _ = handle.send(id, "literal");
        let _ = handle.send(id, s);
        let _ = handle.send(id, v);
        let _ = handle.send(id, owned);
        let _ = handle.send_compressed(id, message);
    }
}

struct Client;

impl ClientHandler for Client {
    type Data = ();

    fn open(&self, ws: &mut ClientWebSocket<()>) {
        ws.send("hello");
        ws.send(String::from("hello"));
        ws.send(vec![0u8; 4]);
        ws.send_compressed("hello");
        let handle = ws.handle();
        let _ = handle.send("queued");
        let _ = handle.send(String::from("queued"));
        let _ = handle.send(vec![1u8]);
        let _ = handle.send(Message::Text("queued"));
        let _ = handle.send_compressed("queued");
        handle.send_now("now");
        handle.send_now(String::from("now"));
        handle.send_now_compressed(&[1u8][..]);
    }
}

fn main() {
    let _ = serve(ServeOptions::default(), Chat);
    let _ = connect("ws://127.0.0.1:1/", ConnectOptions::default(), Client, ());
}

// expect: E0277
use std::rc::Rc;
// The closure runs on the connection's thread: it must be Send.
fn smuggle(handle: uws::ClientHandle<()>, rc: Rc<u8>) {
    handle.defer(move |_ws| drop(rc)).unwrap();
}
fn main() { let _ = smuggle; }

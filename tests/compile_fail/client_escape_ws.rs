// expect: E0521
use std::cell::RefCell;
use uws::*;
thread_local! { static KEEP: RefCell<Option<&'static mut ClientWebSocket<()>>> = RefCell::new(None); }
struct E;
impl ClientHandler for E {
    type Data = ();
    fn open(&self, ws: &mut ClientWebSocket<()>) { KEEP.with(|k| *k.borrow_mut() = Some(ws)); }
}
fn main() {}

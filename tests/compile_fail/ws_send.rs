// expect: E0277
fn assert_send<T: Send + ?Sized>() {}
fn main() { assert_send::<uws::ServerWebSocket<()>>(); }

// expect: E0277
fn assert_sync<T: Sync + ?Sized>() {}
fn main() { assert_sync::<uws::ServerWebSocket<()>>(); }

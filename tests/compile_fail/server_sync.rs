// expect: E0277
fn assert_sync<T: Sync>() {}
fn main() { assert_sync::<uws::Server<()>>(); }

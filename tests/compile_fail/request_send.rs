// expect: E0277
fn assert_send<T: Send>() {}
fn main() { assert_send::<uws::Request<'static>>(); }

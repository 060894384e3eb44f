fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn main() { assert_send::<uws::ServerHandle<std::rc::Rc<u8>>>(); assert_sync::<uws::ServerHandle<std::rc::Rc<u8>>>(); assert_send::<uws::ServerHandle<std::cell::Cell<u8>>>(); assert_sync::<uws::ServerHandle<*mut u8>>(); }

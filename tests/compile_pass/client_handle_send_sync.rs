fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn main() { assert_send::<uws::ClientHandle<std::rc::Rc<u8>>>(); assert_sync::<uws::ClientHandle<std::rc::Rc<u8>>>(); assert_sync::<uws::ClientHandle<*mut u8>>(); }

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn main() { assert_send::<uws::Message<'static>>(); assert_sync::<uws::Message<'static>>(); assert_send::<uws::SocketId>(); assert_send::<uws::OwnedMessage>(); assert_send::<uws::Error>(); assert_sync::<uws::Error>(); assert_send::<uws::Response>(); }

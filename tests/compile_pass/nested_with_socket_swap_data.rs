use uws::*;
// Two sockets at once (nested with_socket) may exchange their data: only
// the sockets themselves cannot be moved.
fn f(s: &Server<u8>, a: SocketId, b: SocketId) {
    s.with_socket(a, |wa| s.with_socket(b, |wb| std::mem::swap(wa.data_mut(), wb.data_mut())));
}
fn main() {
    let _ = f;
}

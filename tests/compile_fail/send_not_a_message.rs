// expect: E0277
// A number is not a message: the error says what is.
struct H;
impl uws::WebSocketHandler for H {
    type Data = ();
    fn fetch(&self, _: &mut uws::Request<'_>, _: &uws::Server<()>) -> uws::Response {
        uws::Response::new("")
    }
    fn open(&self, ws: &mut uws::ServerWebSocket<()>) {
        ws.send(42);
    }
}
fn main() {}

// expect: E0277
fn assert_send<T: Send>() {}
struct H;
impl uws::WebSocketHandler for H {
    type Data = ();
    fn fetch(&self, _: &mut uws::Request<'_>, _: &uws::Server<()>) -> uws::Response {
        uws::Response::new("")
    }
}
fn main() { assert_send::<uws::App<H>>(); }

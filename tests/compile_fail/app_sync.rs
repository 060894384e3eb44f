// expect: E0277
fn assert_sync<T: Sync>() {}
struct H;
impl uws::WebSocketHandler for H {
    type Data = ();
    fn fetch(&self, _: &mut uws::Request<'_>, _: &uws::Server<()>) -> uws::Response {
        uws::Response::new("")
    }
}
fn main() { assert_sync::<uws::App<H>>(); }

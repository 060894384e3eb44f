// expect: E0277
struct H;
impl uws::WebSocketHandler for H {
    type Data = ();
    fn fetch(&self, _: &mut uws::Request<'_>, _: &uws::Server<()>) -> uws::Response {
        uws::Response::new("")
    }
}
fn main() {
    let app = uws::serve(uws::ServeOptions::default(), H).unwrap();
    std::thread::spawn(move || app.run());
}

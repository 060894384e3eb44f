//! Bun's `routes` (Bun.serve, Bun 1.2.3+), on uWebSockets' own router.
//!
//! A table of patterns, each answered by a prebuilt response (written by
//! the native side without calling into Rust), a handler with the powers
//! of `fetch`, or one of those per method. Requests no route takes go to
//! `fetch`. [`Server::reload`] swaps the whole table between two requests.
//!
//! How it runs: every request (and every WebSocket handshake) goes through
//! the shim's router, which matches the installed native table (a
//! `uWS::HttpRouter`) and then either writes the prebuilt bytes or calls
//! [`on_route`] with the id of a handler in the Rust table that was built
//! with that native table. A request is routed by one table from its first
//! byte to its answer: the native table it matched carries the pointer of
//! its own Rust table.

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::net::SocketAddr;
use std::ptr::{self, NonNull};
use std::rc::Rc;

use crate::error::Error;
use crate::handler::WebSocketHandler;
use crate::http::{Request, Response};
use crate::server::callbacks::Ctx;
use crate::server::{Core, Server};
use crate::sys;

/// What a route handler is: Bun's `(req, server) => Response`.
type HandlerFn<T> = dyn Fn(&mut Request<'_>, &Server<T>) -> Response;

/// The id the native table gives requests that no route takes, when the
/// table has its own `fetch` ([`Routes::fetch`]).
const FALLBACK: u32 = u32::MAX;

/// What answers a request: a response fixed when the routes are made
/// (Bun's `new Response(...)` as a route value), or a function of the
/// request (Bun's `req => ...`). Made from either with `From`.
pub struct RouteHandler<T>(Answer<T>);

enum Answer<T> {
    Static(Response),
    Call(Box<HandlerFn<T>>),
}

impl<T> RouteHandler<T> {
    /// A handler that runs for each request, like `fetch`: it may upgrade,
    /// defer the request (`Server::defer_request`), read or stream bodies.
    pub fn call(f: impl Fn(&mut Request<'_>, &Server<T>) -> Response + 'static) -> Self {
        RouteHandler(Answer::Call(Box::new(f)))
    }

    /// A response fixed now and written by the native side for every
    /// request, with no call into Rust. Its status and headers must be
    /// valid (see [`Response::with_header`]), or installing the routes fails.
    pub fn fixed(response: Response) -> Self {
        RouteHandler(Answer::Static(response))
    }
}

impl<T> From<Response> for RouteHandler<T> {
    fn from(response: Response) -> Self {
        RouteHandler::fixed(response)
    }
}

impl<T, F: Fn(&mut Request<'_>, &Server<T>) -> Response + 'static> From<F> for RouteHandler<T> {
    fn from(f: F) -> Self {
        RouteHandler::call(f)
    }
}

/// Per-method handlers for one path (Bun's `{ GET: ..., POST: ... }` as a
/// route value). GET also answers HEAD (without the body) unless HEAD has
/// its own. A method with no handler falls through, as in Bun: to the next
/// route that matches the path (`/api/*` for `DELETE /api/posts`), and to
/// `fetch` when none does.
///
/// ```
/// use uws::*;
/// // "/api/posts": { GET: () => new Response("List posts"), POST: req => ... }
/// let posts: Methods<()> = Methods::new()
///     .get(Response::new("List posts"))
///     .post(|_req: &mut Request<'_>, _server: &Server<()>| Response::new("created").with_status(201));
/// # let _ = posts;
/// ```
pub struct Methods<T> {
    methods: Vec<(String, RouteHandler<T>)>,
}

impl<T> Default for Methods<T> {
    fn default() -> Self {
        Methods::new()
    }
}

impl<T> Methods<T> {
    /// No method yet.
    pub fn new() -> Self {
        Methods {
            methods: Vec::new(),
        }
    }

    /// The handler of `method` (case-sensitive, as HTTP methods are:
    /// `"PROPFIND"`, `"PURGE"`, ...). Given twice, the last one counts.
    pub fn method(mut self, method: &str, handler: impl Into<RouteHandler<T>>) -> Self {
        self.methods.retain(|(m, _)| m != method);
        self.methods.push((method.to_owned(), handler.into()));
        self
    }

    /// Bun's `GET: ...` (answers HEAD too).
    pub fn get(self, handler: impl Into<RouteHandler<T>>) -> Self {
        self.method("GET", handler)
    }

    /// Bun's `POST: ...`.
    pub fn post(self, handler: impl Into<RouteHandler<T>>) -> Self {
        self.method("POST", handler)
    }

    /// Bun's `PUT: ...`.
    pub fn put(self, handler: impl Into<RouteHandler<T>>) -> Self {
        self.method("PUT", handler)
    }

    /// Bun's `PATCH: ...`.
    pub fn patch(self, handler: impl Into<RouteHandler<T>>) -> Self {
        self.method("PATCH", handler)
    }

    /// Bun's `DELETE: ...`.
    pub fn delete(self, handler: impl Into<RouteHandler<T>>) -> Self {
        self.method("DELETE", handler)
    }

    /// Bun's `HEAD: ...` (otherwise GET's handler answers HEAD).
    pub fn head(self, handler: impl Into<RouteHandler<T>>) -> Self {
        self.method("HEAD", handler)
    }

    /// Bun's `OPTIONS: ...`.
    pub fn options(self, handler: impl Into<RouteHandler<T>>) -> Self {
        self.method("OPTIONS", handler)
    }
}

/// One route's value: a handler for every method, or [`Methods`].
pub struct Route<T>(RouteKind<T>);

enum RouteKind<T> {
    Any(RouteHandler<T>),
    Methods(Methods<T>),
}

impl<T> From<RouteHandler<T>> for Route<T> {
    fn from(handler: RouteHandler<T>) -> Self {
        Route(RouteKind::Any(handler))
    }
}

impl<T> From<Response> for Route<T> {
    fn from(response: Response) -> Self {
        Route(RouteKind::Any(RouteHandler::fixed(response)))
    }
}

impl<T, F: Fn(&mut Request<'_>, &Server<T>) -> Response + 'static> From<F> for Route<T> {
    fn from(f: F) -> Self {
        Route(RouteKind::Any(RouteHandler::call(f)))
    }
}

impl<T> From<Methods<T>> for Route<T> {
    fn from(methods: Methods<T>) -> Self {
        Route(RouteKind::Methods(methods))
    }
}

/// Bun's `routes` object (and the `fetch` that [`Server::reload`] may
/// replace): patterns and what answers them. Give them to a server from
/// [`WebSocketHandler::routes`], or swap them with [`Server::reload`].
///
/// Patterns: `/exact/path`, `:name` segments (one segment each, read with
/// [`Request::param`], percent-decoded), and a trailing `*` that takes the
/// rest of the path (`/api/*` takes `/api/` and `/api/a/b`, not `/api`).
/// Bun's precedence, segment by segment from the left: an exact segment
/// before a `:param`, a `:param` before `*`, and `fetch` when nothing
/// matches. A route matched by path but with no handler for the method is
/// passed over: the next match (or `fetch`) takes the request, as in Bun.
///
/// ```
/// use uws::*;
///
/// // Bun.serve({ routes: { ... }, fetch(req) { ... } })
/// let routes: Routes<()> = Routes::new()
///     // "/api/status": new Response("OK"),
///     .route("/api/status", Response::new("OK"))
///     // "/users/:id": req => new Response(`Hello User ${req.params.id}!`),
///     .route("/users/:id", |req: &mut Request<'_>, _: &Server<()>| {
///         Response::new(format!("Hello User {}!", req.param("id").unwrap_or_default()))
///     })
///     // "/api/posts": { GET: () => new Response("List posts"), POST: ... },
///     .route("/api/posts", Methods::new().get(Response::new("List posts")))
///     // "/api/*": Response.json({ message: "Not found" }, { status: 404 }),
///     .route("/api/*", Response::new("Not found").with_status(404))
///     // "/blog/hello": Response.redirect("/blog/hello/world"),
///     .route("/blog/hello", Response::redirect("/blog/hello/world"));
/// assert_eq!(routes.len(), 5);
/// ```
pub struct Routes<T> {
    routes: Vec<(String, Route<T>)>,
    fetch: Option<Box<HandlerFn<T>>>,
}

impl<T> Default for Routes<T> {
    fn default() -> Self {
        Routes::new()
    }
}

impl<T> Routes<T> {
    /// No routes: every request goes to `fetch`.
    pub fn new() -> Self {
        Routes {
            routes: Vec::new(),
            fetch: None,
        }
    }

    /// Adds a route (Bun's `"pattern": value`). A response is served as it
    /// is, with no call into Rust; a closure runs per request; [`Methods`]
    /// per method. A pattern given twice (also `/a/:x` and `/a/:y`, which
    /// match the same) makes installing the routes fail.
    pub fn route(mut self, pattern: &str, route: impl Into<Route<T>>) -> Self {
        self.routes.push((pattern.to_owned(), route.into()));
        self
    }

    /// Replaces the handler's `fetch` for requests no route takes, while
    /// these routes are installed (Bun's `server.reload({ routes, fetch })`).
    pub fn fetch(mut self, f: impl Fn(&mut Request<'_>, &Server<T>) -> Response + 'static) -> Self {
        self.fetch = Some(Box::new(f));
        self
    }

    /// How many routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl<T> std::fmt::Debug for Routes<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field(
                "patterns",
                &self.routes.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("fetch", &self.fetch.is_some())
            .finish()
    }
}

/// A route handler of an installed table, with its pattern's parameter
/// names.
struct Call<T> {
    names: Rc<[Box<str>]>,
    f: Box<HandlerFn<T>>,
}

/// The Rust half of an installed table: the handlers its native half
/// calls by id.
pub(crate) struct Table<T> {
    calls: Vec<Call<T>>,
    fallback: Option<Box<HandlerFn<T>>>,
}

impl<T> Table<T> {
    fn call(&self, id: u32, req: &mut Request<'_>, server: &Server<T>) -> Response {
        if id == FALLBACK {
            if let Some(fetch) = &self.fallback {
                return fetch(req, server);
            }
        }
        let call = &self.calls[id as usize];
        req.params = Some(NonNull::from(&*call.names));
        (call.f)(req, server)
    }
}

/// The native half of a table being built; freed unless installed.
struct NativeTable(*mut sys::uws_routes_t);

impl Drop for NativeTable {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: ours, never installed (installing takes the pointer).
            unsafe { sys::uws_routes_free(self.0) };
        }
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidOption {
        name: "routes",
        reason,
    }
}

/// A pattern's parameter names, and its shape for duplicate checks
/// (`/a/:x` and `/a/:y` are the same route to the router).
fn parse_pattern(pattern: &str) -> Result<(Vec<Box<str>>, String), Error> {
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(invalid(format!("{pattern:?} does not start with '/'")));
    };
    if pattern.contains(['?', '#']) || pattern.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(invalid(format!(
            "{pattern:?} has a character a path cannot have ('?', '#', a space or a control)"
        )));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let mut names: Vec<Box<str>> = Vec::new();
    let mut shape = String::new();
    for (i, segment) in segments.iter().enumerate() {
        shape.push('/');
        if let Some(name) = segment.strip_prefix(':') {
            if name.is_empty() {
                return Err(invalid(format!(
                    "{pattern:?} has a parameter without a name"
                )));
            }
            if names.iter().any(|n| &**n == name) {
                return Err(invalid(format!("{pattern:?} names :{name} twice")));
            }
            names.push(name.into());
            shape.push(':');
        } else if segment.contains('*') {
            if *segment != "*" || i + 1 != segments.len() {
                return Err(invalid(format!(
                    "{pattern:?}: '*' can only be the whole last segment"
                )));
            }
            shape.push('*');
        } else {
            shape.push_str(segment);
        }
    }
    Ok((names, shape))
}

fn valid_method(method: &str) -> bool {
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    !method.is_empty() && method.bytes().all(token)
}

/// Builds both halves of a table.
fn build<T: 'static>(routes: Routes<T>) -> Result<(Rc<Table<T>>, NativeTable), Error> {
    enum Native {
        Static(String, Vec<u8>),
        Call(u32),
    }
    let mut calls: Vec<Call<T>> = Vec::new();
    let mut plan: Vec<(String, Vec<(String, Native)>)> = Vec::new();
    let mut shapes: Vec<String> = Vec::new();
    for (pattern, Route(kind)) in routes.routes {
        let (names, shape) = parse_pattern(&pattern)?;
        if shapes.contains(&shape) {
            return Err(invalid(format!(
                "{pattern:?} matches the same paths as an earlier route"
            )));
        }
        shapes.push(shape);
        let names: Rc<[Box<str>]> = names.into();
        let handlers = match kind {
            RouteKind::Any(h) => vec![(String::new(), h)],
            RouteKind::Methods(m) => {
                if let Some((bad, _)) = m.methods.iter().find(|(m, _)| !valid_method(m)) {
                    return Err(invalid(format!(
                        "{pattern:?}: {bad:?} is not a method name"
                    )));
                }
                m.methods
            }
        };
        let mut actions = Vec::new();
        for (method, RouteHandler(answer)) in handlers {
            let native = match answer {
                Answer::Static(response) => {
                    let head = response.prebuilt_head().ok_or_else(|| {
                        invalid(format!(
                            "{pattern:?}: the response has an invalid status or header"
                        ))
                    })?;
                    Native::Static(head, response.into_body())
                }
                Answer::Call(f) => {
                    let id = u32::try_from(calls.len())
                        .ok()
                        .filter(|&id| id != FALLBACK)
                        .ok_or_else(|| invalid("too many handlers".into()))?;
                    calls.push(Call {
                        names: names.clone(),
                        f,
                    });
                    Native::Call(id)
                }
            };
            actions.push((method, native));
        }
        plan.push((pattern, actions));
    }
    let has_fallback = routes.fetch.is_some();
    let table = Rc::new(Table {
        calls,
        fallback: routes.fetch,
    });
    if plan.is_empty() && !has_fallback {
        return Ok((table, NativeTable(ptr::null_mut())));
    }
    // SAFETY: a new native table; `user` is the Rust half, which lives as
    // long as the native half can call with it (see `RouteState`).
    let native = NativeTable(unsafe { sys::uws_routes_create(Rc::as_ptr(&table) as *mut c_void) });
    for (pattern, actions) in &plan {
        // SAFETY: our table; the strings are borrowed for the calls (the
        // native side copies them).
        unsafe {
            let route = sys::uws_routes_add(native.0, pattern.as_ptr().cast(), pattern.len());
            for (method, action) in actions {
                let (m, ml) = (method.as_ptr().cast(), method.len());
                match action {
                    Native::Static(head, body) => sys::uws_routes_set_static(
                        native.0,
                        route,
                        m,
                        ml,
                        head.as_ptr().cast(),
                        head.len(),
                        body.as_ptr().cast(),
                        body.len(),
                    ),
                    Native::Call(id) => sys::uws_routes_set_handler(native.0, route, m, ml, *id),
                }
            }
        }
    }
    if has_fallback {
        // SAFETY: our table.
        unsafe { sys::uws_routes_set_fallback(native.0, FALLBACK) };
    }
    Ok((table, native))
}

/// A server's routes: its native router and the Rust half of the
/// installed table (and of replaced ones, until no handler of theirs can
/// be running).
pub(crate) struct RouteState {
    router: Cell<*mut sys::uws_router_t>,
    current: RefCell<Option<Rc<dyn Any>>>,
    retired: RefCell<Vec<Rc<dyn Any>>>,
    /// A job to drop the retired tables is queued.
    sweep_queued: Cell<bool>,
}

impl RouteState {
    pub(crate) fn new() -> Self {
        RouteState {
            router: Cell::new(ptr::null_mut()),
            current: RefCell::new(None),
            retired: RefCell::new(Vec::new()),
            sweep_queued: Cell::new(false),
        }
    }

    /// The app's router (made in `build`, lives as long as the app).
    pub(crate) fn set_router(&self, router: *mut sys::uws_router_t) {
        self.router.set(router);
    }

    /// Prebuilt responses close their connection from now on (the server
    /// is stopping).
    pub(crate) fn closing(&self) {
        let router = self.router.get();
        if !router.is_null() {
            // SAFETY: the router lives as long as the app.
            unsafe { sys::uws_router_set_closing(router, 1) };
        }
    }

    /// The replaced tables, none of whose handlers can run now.
    fn take_retired(&self) -> Vec<Rc<dyn Any>> {
        self.sweep_queued.set(false);
        std::mem::take(&mut *self.retired.borrow_mut())
    }
}

impl Core {
    fn install_routes<T: 'static>(&self, routes: Routes<T>) -> Result<(), Error> {
        let state = &self.routes;
        let router = state.router.get();
        if router.is_null() {
            return Err(Error::NotRunning);
        }
        let (table, mut native) = build(routes)?;
        let raw = std::mem::replace(&mut native.0, ptr::null_mut());
        // SAFETY: the router lives as long as the app; it owns `raw` from
        // now on (null: no table). The table it replaces is freed by the
        // native side once no request it routed is in a handler.
        unsafe { sys::uws_router_set(router, raw) };
        let table: Rc<dyn Any> = table;
        let old = state.current.replace(Some(table));
        if let Some(old) = old {
            // A handler of the old table may be running now (this is
            // usually called from one): its closures go when none can be.
            state.retired.borrow_mut().push(old);
            if !state.sweep_queued.replace(true) {
                let queued = self.shared.push(
                    Box::new(|core: &Core| {
                        for table in core.routes.take_retired() {
                            core.dispose(table);
                        }
                    }),
                    false,
                );
                if queued.is_err() {
                    state.sweep_queued.set(false);
                }
            }
        }
        Ok(())
    }
}

impl<T: 'static> Server<T> {
    /// Bun's `server.reload({ routes, fetch })`: replaces the routes (and
    /// the `fetch` they carry, see [`Routes::fetch`]) for every request
    /// that starts being routed from now on. Connections stay open; a
    /// request is answered by the old routes or by the new ones, never by
    /// a mix. On a server on several threads this reloads the thread it is
    /// called on.
    ///
    /// Errors: an invalid pattern or static response (the old routes stay).
    pub fn reload(&self, routes: Routes<T>) -> Result<(), Error> {
        self.core().install_routes(routes)
    }

    /// Bun's `server.requestIP(req)`: the client's address and port
    /// (`None` on a unix socket).
    pub fn request_ip(&self, req: &Request<'_>) -> Option<SocketAddr> {
        let ip = req.remote_address()?;
        // SAFETY: `res` is the live response of this request.
        let port = unsafe { sys::uws_res_remote_port(req.ssl, req.res) };
        Some(SocketAddr::new(ip, u16::try_from(port).unwrap_or(0)))
    }

    /// Bun's `server.timeout(req, seconds)`: the idle timeout of this
    /// request's connection while it waits for its answer, in seconds (0:
    /// none, the default; at most 960, more counts as 960). Call it before
    /// [`Server::defer_request`]. A connection silent that long is closed,
    /// and the pending request sees the abort. While a request body
    /// arrives, uWebSockets' own body timeout (10 s without enough data)
    /// applies; this one starts again once the body is in. Once answered,
    /// the connection gets the keep-alive timeout again.
    pub fn timeout(&self, req: &mut Request<'_>, seconds: u32) {
        let seconds = seconds.min(960);
        req.timeout = Some(seconds);
        // SAFETY: `res` is the live response of this request.
        unsafe { sys::uws_res_timeout(req.ssl, req.res, seconds) };
    }
}

/// Makes the router every request of `app` goes through, with `H`'s
/// trampolines.
pub(crate) fn router<H: WebSocketHandler>(
    ssl: i32,
    app: *mut sys::uws_app_t,
    pattern: &std::ffi::CStr,
    ctx: *const Ctx<H>,
) -> *mut sys::uws_router_t {
    // SAFETY: the app is alive; the context outlives the app (freed after
    // it), and the trampolines match it.
    unsafe {
        sys::uws_app_router(
            ssl,
            app,
            pattern.as_ptr(),
            Some(crate::server::callbacks::on_http::<H>),
            Some(on_route::<H>),
            ctx.cast_mut().cast(),
        )
    }
}

/// Installs the routes the handler starts with.
pub(crate) fn install_initial<H: WebSocketHandler>(core: &Core, handler: &H) -> Result<(), Error> {
    let routes = handler.routes();
    if routes.is_empty() && routes.fetch.is_none() {
        return Ok(());
    }
    core.install_routes(routes)
}

/// A route's handler: runs like `fetch` (same panics, upgrades, deferrals).
unsafe extern "C" fn on_route<H: WebSocketHandler>(
    c: *mut c_void,
    user: *mut c_void,
    res: *mut sys::uws_res_t,
    req: *mut sys::uws_req_t,
    ws_context: *mut c_void,
    handler: u32,
) {
    // SAFETY: registered with this handler's context; `user` is the Rust
    // half of the native table that routed this request, kept alive by the
    // `RouteState` at least until no handler of it runs; tables of a
    // `Server<H::Data>` hold `H::Data` handlers.
    let (c, table) = unsafe { (&*(c as *const Ctx<H>), &*(user as *const Table<H::Data>)) };
    c.respond(res, req, ws_context, |request, server| {
        table.call(handler, request, server)
    });
}

/// Percent-decodes a path segment (`+` stays `+`); bytes that are not
/// UTF-8 after decoding become U+FFFD.
pub(crate) fn decode_segment(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'%') {
        return String::from_utf8_lossy(raw);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1).copied(), raw.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode() {
        assert_eq!(decode_segment(b"J%C3%BCrgen"), "Jürgen");
        assert_eq!(decode_segment(b"a+b%20c"), "a+b c");
        assert_eq!(decode_segment(b"bad%zz%4"), "bad%zz%4");
        assert_eq!(decode_segment(b"%FF"), "\u{fffd}");
        assert_eq!(decode_segment(b"plain"), "plain");
    }

    #[test]
    fn patterns() {
        let (names, shape) = parse_pattern("/users/:id/posts/:post").unwrap();
        assert_eq!(&*names, &["id".into(), "post".into()] as &[Box<str>]);
        assert_eq!(shape, "/users/:/posts/:");
        assert_eq!(parse_pattern("/api/*").unwrap().1, "/api/*");
        assert!(parse_pattern("api").is_err());
        assert!(parse_pattern("/a/*/b").is_err());
        assert!(parse_pattern("/a/b*").is_err());
        assert!(parse_pattern("/a/:").is_err());
        assert!(parse_pattern("/a/:x/:x").is_err());
        assert!(parse_pattern("/a?b").is_err());
    }
}

//! The server value [`serve`](crate::serve) returns, and who frees what,
//! when: the App (its native app and the handler), and the thread's loop.
//!
//! Three rules keep this sound:
//! - An App dropped while one of its own callbacks runs (it was kept in a
//!   thread-local and dropped from its `fetch`, say) is only stopped then;
//!   it is freed at the next point where none of its callbacks run (the
//!   loop's next wakeup, or when `run` returns).
//! - The loop belongs to the thread but is freed by us, after every App of
//!   the thread: an App that a thread-local drops during thread exit still
//!   finds its loop.
//! - Handles stop reaching a server when it is stopped for good, or when its
//!   thread exits.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::sync::{Arc, Weak};

use crate::error::Error;
use crate::handler::WebSocketHandler;
use crate::runtime::drop_contained;
use crate::server::callbacks::Ctx;
use crate::server::{Core, Server, Shared};
use crate::sys;

thread_local! {
    /// This thread's loop, once a server has used it.
    static LOOP: Cell<*mut sys::uws_loop_t> = const { Cell::new(ptr::null_mut()) };
    /// Apps of this thread not yet freed.
    static APPS: Cell<usize> = const { Cell::new(0) };
    /// The thread is exiting: its loop goes once the last App has.
    static EXITING: Cell<bool> = const { Cell::new(false) };
    /// Apps dropped inside their own callbacks, waiting to be freed.
    static DOOMED: Cell<*mut Doomed> = const { Cell::new(ptr::null_mut()) };
    /// `App::run` is running on this thread.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
    static GUARD: ThreadGuard = const { ThreadGuard(RefCell::new(Vec::new())) };
}

/// Runs at thread exit (thread-locals with a destructor are destroyed then;
/// the plain cells above stay usable).
struct ThreadGuard(RefCell<Vec<Weak<Shared>>>);

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        EXITING.with(|e| e.set(true));
        for shared in self.0.borrow().iter().filter_map(Weak::upgrade) {
            shared.close();
        }
        free_doomed();
        free_loop_if_unused();
    }
}

/// This thread is exiting (its loop goes once nothing uses it).
pub(crate) fn thread_exiting() {
    EXITING.with(|e| e.set(true));
}

fn free_loop_if_unused() {
    if APPS.with(Cell::get) == 0 && EXITING.with(Cell::get) && !RUNNING.with(Cell::get) {
        let l = LOOP.with(|l| l.replace(ptr::null_mut()));
        if !l.is_null() {
            // SAFETY: our loop, no App left on it, and this thread will not
            // run it again (it is exiting).
            unsafe { sys::uws_loop_free(l) };
        }
    }
}

/// Whether `App::run` runs this thread's loop now (so the current loop
/// iteration will end, and its post handlers run).
pub(crate) fn loop_running() -> bool {
    RUNNING.with(Cell::get)
}

/// Whether a callback of any server of this thread runs now (doomed ones
/// included).
fn callback_running() -> bool {
    let live = GUARD
        .try_with(|g| {
            g.0.borrow()
                .iter()
                .filter_map(Weak::upgrade)
                .any(|shared| shared.in_callback())
        })
        .unwrap_or(false);
    let mut doomed = DOOMED.with(Cell::get);
    let mut any = live || crate::client::in_callback();
    while !doomed.is_null() && !any {
        // SAFETY: nodes on the list and their cores are live.
        unsafe {
            any = (*(*doomed).core).in_callback();
            doomed = (*doomed).next;
        }
    }
    any
}

/// Runs this thread's loop (see `App::run`).
fn run_loop(loop_: *mut sys::uws_loop_t) {
    if RUNNING.with(Cell::get) || callback_running() {
        panic!("run called inside a handler: the loop cannot run inside itself");
    }
    RUNNING.with(|r| r.set(true));
    // SAFETY: this thread's loop, not running yet.
    unsafe { sys::uws_loop_run(loop_) };
    RUNNING.with(|r| r.set(false));
    free_doomed();
}

/// Runs this thread's loop, if it has one (`uws::run`).
pub(crate) fn run_thread_loop() {
    let loop_ = LOOP.with(Cell::get);
    if !loop_.is_null() {
        run_loop(loop_);
    }
}

/// One App's claim on this thread's loop (released when the App is freed).
pub(crate) struct ThreadLoop {
    loop_: *mut sys::uws_loop_t,
}

impl ThreadLoop {
    /// This thread's loop, created on first use.
    pub(crate) fn acquire() -> Result<ThreadLoop, Error> {
        if EXITING.with(Cell::get) {
            return Err(Error::NotRunning);
        }
        let loop_ = LOOP.with(|l| {
            if l.get().is_null() {
                // SAFETY: creates (or finds) this thread's loop, which from
                // now on only `uws_loop_free` frees.
                l.set(unsafe { sys::uws_loop_get() });
            }
            l.get()
        });
        if loop_.is_null() {
            return Err(Error::Resources {
                what: "an event loop",
                source: std::io::Error::last_os_error(),
            });
        }
        APPS.with(|a| a.set(a.get() + 1));
        Ok(ThreadLoop { loop_ })
    }

    pub(crate) fn loop_(&self) -> *mut sys::uws_loop_t {
        self.loop_
    }

    /// Closes `shared` for other threads when this thread exits.
    fn watch(&self, shared: &Arc<Shared>) -> Result<(), Error> {
        GUARD
            .try_with(|g| {
                let mut list = g.0.borrow_mut();
                list.retain(|w| w.strong_count() > 0);
                list.push(Arc::downgrade(shared));
            })
            .map_err(|_| Error::NotRunning)
    }
}

impl Drop for ThreadLoop {
    fn drop(&mut self) {
        APPS.with(|a| a.set(a.get() - 1));
        free_loop_if_unused();
    }
}

/// An App waiting to be freed: see the module docs.
struct Doomed {
    core: *const Core,
    ctx: *mut c_void,
    free: unsafe fn(*mut c_void),
    thread: ThreadLoop,
    next: *mut Doomed,
}

/// Frees the doomed Apps none of whose callbacks run now.
pub(crate) fn free_doomed() {
    let mut list = DOOMED.with(|d| d.replace(ptr::null_mut()));
    while !list.is_null() {
        // SAFETY: nodes are made by `Box::into_raw` in `doom` and owned by
        // the list, which we took.
        let node = unsafe { Box::from_raw(list) };
        list = node.next;
        // SAFETY: a doomed core lives until its node is freed.
        if unsafe { (*node.core).in_callback() } {
            let node = Box::into_raw(node);
            DOOMED.with(|d| {
                // SAFETY: `node` is ours until put back on the list.
                unsafe { (*node).next = d.get() };
                d.set(node);
            });
        } else {
            // SAFETY: `ctx` is the doomed App's, freed once, here; none of its
            // callbacks run, and its App value is gone.
            unsafe { (node.free)(node.ctx) };
            drop(node.thread);
        }
    }
}

unsafe extern "C" fn free_doomed_later(_: *mut c_void) {
    free_doomed();
}

/// A bound server with its handler, not yet running: what [`serve`](crate::serve)
/// returns. Derefs to [`Server`]; [`run`](Self::run) runs it on this
/// thread. Dropping it stops it (gracefully: close handlers run) and frees
/// it.
///
/// ```no_run
/// use uws::*;
///
/// struct Hello;
/// impl WebSocketHandler for Hello {
///     type Data = ();
///     fn fetch(&self, _req: &mut Request<'_>, _server: &Server<()>) -> Response {
///         Response::new("hello")
///     }
/// }
///
/// let app: App<Hello> = serve(ServeOptions { port: 0, ..Default::default() }, Hello)?;
/// println!("listening on {}:{}", app.hostname(), app.port());
/// let handle = app.handle(); // for other threads
/// # let _ = handle;
/// app.run(); // until stopped
/// # Ok::<(), uws::Error>(())
/// ```
///
/// An App is not `Send`: it lives on the thread whose loop it uses. Two
/// Apps on one thread share that loop, and either's `run` serves both.
pub struct App<H: WebSocketHandler> {
    ctx: NonNull<Ctx<H>>,
    thread: Option<ThreadLoop>,
}

impl<H: WebSocketHandler> Deref for App<H> {
    type Target = Server<H::Data>;

    fn deref(&self) -> &Server<H::Data> {
        // SAFETY: the context lives until the App is freed.
        unsafe { &self.ctx.as_ref().server }
    }
}

impl<H: WebSocketHandler> App<H> {
    /// Owns `server` (whose native app was made on `thread`'s loop) and
    /// its handler from now on.
    pub(crate) fn new(thread: ThreadLoop, handler: Arc<H>, server: Server<H::Data>) -> Self {
        let ctx = Box::into_raw(Box::new(Ctx { handler, server }));
        let app = App {
            // SAFETY: from Box::into_raw, never null.
            ctx: unsafe { NonNull::new_unchecked(ctx) },
            thread: Some(thread),
        };
        // A failure here means the thread is exiting: the App then just
        // cannot be reached from other threads at exit, which it cannot be
        // anyway.
        let _ = app.thread.as_ref().map(|t| t.watch(&app.core().shared));
        app
    }

    pub(crate) fn ctx_ptr(&self) -> *const Ctx<H> {
        self.ctx.as_ptr()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        // SAFETY: the context lives until the App is freed.
        unsafe { &self.ctx.as_ref().handler }
    }

    /// Runs the thread's event loop until [`Server::stop`] has closed
    /// everything (Bun's process staying alive while it serves). Other
    /// Apps of this thread are served too.
    ///
    /// # Panics
    /// When called from inside a handler (of any server of this thread):
    /// the loop cannot run inside itself.
    pub fn run(self) {
        // Callbacks reach the context through raw pointers only, never
        // through `self`.
        run_loop(self.core().loop_);
        // On several threads, the first returns once all have ended.
        self.core().join_threads();
    }

    /// Frees a context made by `new`.
    ///
    /// # Safety
    /// `ctx` is an `App<H>`'s context, not used by anyone any more (no
    /// callback of it runs, its App value is gone), freed once.
    unsafe fn free(ctx: *mut c_void) {
        // SAFETY: caller's promise.
        let core = unsafe { (*(ctx as *const Ctx<H>)).server.core() };
        core.close_stop_timer();
        core.stop_now();
        core.leave_loop();
        // SAFETY: every connection is closed and no callback can come any
        // more; the native app is freed before the context its callbacks
        // point at.
        unsafe {
            sys::uws_app_close(core.ssl, core.app);
            sys::uws_app_destroy(core.ssl, core.app);
        }
        core.shared.close();
        core.join_threads();
        core.end_bus();
        // SAFETY: made by `Box::into_raw` in `new`; caller's promise.
        let ctx = unsafe { Box::from_raw(ctx as *mut Ctx<H>) };
        let Ctx { handler, server } = *ctx;
        // The handler is a user value: dropped through the server's gate
        // (its panic has no handler left to go to).
        let _ = server.core().gate.dispose(handler);
        let _ = drop_contained(server);
    }
}

impl<H: WebSocketHandler> Drop for App<H> {
    fn drop(&mut self) {
        let thread = self.thread.take().expect("an App's thread claim");
        let core = self.core();
        core.stop();
        core.shared.close();
        if core.in_callback() {
            // Dropped from inside one of its own callbacks: uWebSockets is
            // still running code of this app below us. Free it later.
            core.doomed.set(true);
            let node = Box::into_raw(Box::new(Doomed {
                core,
                ctx: self.ctx.as_ptr().cast(),
                free: Self::free,
                thread,
                next: DOOMED.with(Cell::get),
            }));
            DOOMED.with(|d| d.set(node));
            // SAFETY: the loop is alive (this App's claim is in the node);
            // the callback takes no argument.
            unsafe {
                sys::uws_loop_defer(core.loop_, Some(free_doomed_later), None, ptr::null_mut())
            };
        } else {
            // SAFETY: no callback of this App runs, and its value is going.
            unsafe { Self::free(self.ctx.as_ptr().cast()) };
            drop(thread);
        }
    }
}

impl<H: WebSocketHandler> std::fmt::Debug for App<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.deref().fmt(f)
    }
}

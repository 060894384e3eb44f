//! Timers on a server's loop: Bun's `setTimeout` / `setInterval`, scoped
//! to the server (they never outlive it, and a stop clears them).

use std::cell::RefCell;
use std::ffi::c_void;
use std::time::Duration;

use crate::server::{Core, Server};
use crate::sys;

/// Names a timer of a server, to clear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    server: u32,
    index: u32,
    generation: u32,
}

type Callback = Box<dyn FnMut(&Core)>;

/// What the native timer carries back to us.
struct Arg {
    core: *const Core,
    id: TimerId,
}

struct Live {
    native: *mut sys::uws_timer_t,
    arg: *mut Arg,
    repeat: bool,
    /// Taken out while it runs.
    callback: Option<Callback>,
}

struct Slot {
    generation: u32,
    live: Option<Live>,
}

/// A server's timers.
pub(crate) struct Timers {
    server: u32,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
}

impl Timers {
    pub(crate) fn new(server: u32) -> Self {
        Timers {
            server,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
        }
    }

    fn find(&self, id: TimerId) -> Option<usize> {
        let slots = self.slots.borrow();
        let slot = slots.get(id.index as usize)?;
        (id.server == self.server && slot.generation == id.generation && slot.live.is_some())
            .then_some(id.index as usize)
    }

    /// Forgets the timer and closes its native side; its callback is
    /// returned unless it is running now.
    fn remove(&self, id: TimerId) -> Option<Option<Callback>> {
        let index = self.find(id)?;
        let live = self.slots.borrow_mut()[index].live.take().expect("found");
        self.retire(index as u32);
        // SAFETY: our native timer, closed once (its slot is gone); closing
        // inside its own callback is allowed. `arg` was made by
        // `Box::into_raw` for it and nothing reads it after this.
        unsafe {
            sys::uws_timer_close(live.native);
            drop(Box::from_raw(live.arg));
        }
        Some(live.callback)
    }

    /// Gives back a slot whose timer is gone (or whose id was handed out
    /// but never set): its generation moves on, so that its id never names
    /// a later timer.
    fn retire(&self, index: u32) {
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[index as usize];
        if let Some(g) = slot.generation.checked_add(1) {
            slot.generation = g;
            self.free.borrow_mut().push(index);
        }
    }

    /// Clears every timer (their callbacks are dropped here, through the
    /// gate of `core`, whose timers these are).
    pub(crate) fn clear_all(&self, core: &Core) {
        let ids: Vec<TimerId> = self
            .slots
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live.is_some())
            .map(|(i, s)| TimerId {
                server: self.server,
                index: i as u32,
                generation: s.generation,
            })
            .collect();
        for id in ids {
            if let Some(Some(callback)) = self.remove(id) {
                core.dispose(callback);
            }
        }
    }
}

unsafe extern "C" fn fire(arg: *mut c_void) {
    // SAFETY: the timer's `Arg`, alive while the timer is; its core clears
    // every timer before it goes away.
    let (core, id) = unsafe {
        let arg = &*(arg as *const Arg);
        (&*arg.core, arg.id)
    };
    let _in = core.gate.enter();
    let timers = &core.timers;
    let Some(index) = timers.find(id) else { return };
    let (callback, repeat) = {
        let mut slots = timers.slots.borrow_mut();
        let live = slots[index].live.as_mut().expect("found");
        (live.callback.take(), live.repeat)
    };
    let Some(mut callback) = callback else { return };
    if !repeat {
        timers.remove(id);
    }
    core.call("timer", || callback(core));
    // An interval goes on unless it was cleared meanwhile.
    match timers.find(id).filter(|_| repeat) {
        Some(index) => {
            let mut slots = timers.slots.borrow_mut();
            slots[index].live.as_mut().expect("found").callback = Some(callback);
        }
        None => core.dispose(callback),
    }
}

fn millis(d: Duration) -> i32 {
    d.as_millis().clamp(1, i32::MAX as u128) as i32
}

impl<T: 'static> Server<T> {
    fn add_timer(&self, every: Duration, repeat: bool, callback: Callback) -> TimerId {
        let core = self.core();
        let timers = &core.timers;
        let index = timers.free.borrow_mut().pop();
        let index = index.unwrap_or_else(|| {
            let mut slots = timers.slots.borrow_mut();
            slots.push(Slot {
                generation: 0,
                live: None,
            });
            (slots.len() - 1) as u32
        });
        let id = TimerId {
            server: timers.server,
            index,
            generation: timers.slots.borrow()[index as usize].generation,
        };
        if core.stopping() {
            // Never fires, and the id names nothing: not even a later timer.
            timers.retire(index);
            return id;
        }
        let native = match crate::ffi::timer(core.loop_, false) {
            Ok(native) => native,
            Err(e) => {
                // Out of descriptors: the handler hears of it, and the id
                // names nothing, not even a later timer.
                timers.retire(index);
                core.dispose(callback);
                core.report(&e);
                return id;
            }
        };
        let arg = Box::into_raw(Box::new(Arg { core, id }));
        let ms = millis(every);
        // SAFETY: our fallthrough timer on the server's loop (it does not
        // keep `run` going); closed in `remove`, which every way out of the
        // slot goes through, before the core goes away.
        unsafe {
            sys::uws_timer_set(
                native,
                Some(fire),
                arg.cast(),
                ms,
                if repeat { ms } else { 0 },
            )
        };
        timers.slots.borrow_mut()[index as usize].live = Some(Live {
            native,
            arg,
            repeat,
            callback: Some(callback),
        });
        id
    }

    /// Bun's `setTimeout(f, ms)`, on the server's thread: runs `f` once
    /// after `after` (at least 1 ms). Cleared by [`clear_timer`](Self::clear_timer)
    /// and by a stop; a panic in `f` goes to the error handler. Timers do
    /// not keep [`App::run`](crate::App::run) going. When the process is
    /// out of file descriptors the timer is not made: the error handler
    /// gets [`Error::Resources`](crate::Error::Resources) and `f` is dropped.
    ///
    /// ```no_run
    /// # use uws::*;
    /// # use std::time::Duration;
    /// # struct H;
    /// # impl WebSocketHandler for H {
    /// #   type Data = ();
    /// #   fn fetch(&self, _: &mut Request<'_>, _: &Server<()>) -> Response { Response::new("") }
    /// fn open(&self, ws: &mut ServerWebSocket<()>) {
    ///     let id = ws.id();
    ///     // setTimeout(() => ws.send("still there?"), 5000)
    ///     ws.server().set_timeout(Duration::from_secs(5), move |server| {
    ///         server.send(id, "still there?");
    ///     });
    /// }
    /// # }
    /// ```
    pub fn set_timeout(&self, after: Duration, f: impl FnOnce(&Server<T>) + 'static) -> TimerId {
        let mut f = Some(f);
        self.add_timer(
            after,
            false,
            Box::new(move |core| {
                if let Some(f) = f.take() {
                    f(Server::from_core(core))
                }
            }),
        )
    }

    /// Bun's `setInterval(f, ms)`, on the server's thread: runs `f` every
    /// `every` (at least 1 ms) until cleared or the server stops.
    pub fn set_interval(
        &self,
        every: Duration,
        mut f: impl FnMut(&Server<T>) + 'static,
    ) -> TimerId {
        self.add_timer(
            every,
            true,
            Box::new(move |core| f(Server::from_core(core))),
        )
    }

    /// Bun's `clearTimeout` / `clearInterval`. Returns whether the timer
    /// was still set (a timeout that fired, or a timer of another server,
    /// is not). Allowed inside the timer's own callback.
    pub fn clear_timer(&self, id: TimerId) -> bool {
        match self.core().timers.remove(id) {
            Some(callback) => {
                if let Some(callback) = callback {
                    self.core().dispose(callback);
                }
                true
            }
            None => false,
        }
    }
}

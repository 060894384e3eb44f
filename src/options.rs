//! Server and WebSocket options, with Bun's names and Bun's defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::sys;
use crate::tls::TlsOptions;

/// Where and how to serve: the Rust side of Bun's `Bun.serve({ ... })` object.
///
/// ```
/// use uws::{ServeOptions, WebSocketOptions};
///
/// // Bun.serve({ hostname: "127.0.0.1", port: 0, websocket: { idleTimeout: 30 } })
/// let options = ServeOptions {
///     hostname: "127.0.0.1".into(),
///     port: 0,
///     websocket: WebSocketOptions { idle_timeout: 30, ..Default::default() },
///     ..Default::default()
/// };
/// assert_eq!(options.websocket.max_payload_length, 16 * 1024 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Interface to bind, as a name or an address. Default `"0.0.0.0"`, as in Bun.
    pub hostname: String,
    /// TCP port; `0` picks a free one ([`Server::port`](crate::Server::port)
    /// tells which). Default `3000`, as in Bun.
    pub port: u16,
    /// Listen on this unix domain socket instead of TCP (Bun's `unix`).
    pub unix: Option<PathBuf>,
    /// The `websocket` part of Bun's options.
    pub websocket: WebSocketOptions,
    /// Serve `wss://` with these certificates (Bun's `tls`; needs the `tls`
    /// cargo feature). A missing or bad certificate is an error from
    /// [`serve`](crate::serve), never a plain-text listener.
    pub tls: Option<TlsOptions>,
    /// Share the port with other sockets that ask for it (SO_REUSEPORT,
    /// Bun's `reusePort`): several servers, in this process or others, then
    /// take turns accepting its connections. Default `false`: the port is
    /// this server's alone, and binding one in use is an error. Sharing
    /// needs a fixed port: one picked by the kernel (`port: 0`) is never
    /// shared.
    pub reuse_port: bool,
    /// How long [`Server::stop`](crate::Server::stop) lets connections
    /// finish (closing handshakes, responses being written) before it
    /// closes the rest. Default 5 seconds.
    pub stop_grace_period: Duration,
    /// Largest request body read for a
    /// [`PendingRequest`](crate::PendingRequest), in bytes (Bun's
    /// `maxRequestBodySize`). A larger one is answered 413 and its
    /// connection closed. Default 128 MiB.
    pub max_request_body_size: usize,
    /// Event loops, each on a thread of its own, for
    /// [`serve_threaded`](crate::serve_threaded): `0` is one per available
    /// core. At most [`MAX_THREADS`](Self::MAX_THREADS). Default 1
    /// ([`serve`](crate::serve) takes only 1).
    pub threads: usize,
    /// How many calls from other threads ([`ServerHandle`](crate::ServerHandle)
    /// publish, send, defer, ...) may wait for the server's loop at once.
    /// Past it they fail with [`Error::QueueFull`] instead of growing
    /// memory without bound. At least 1; default 65 536.
    pub queue_limit: usize,
    /// The most bytes a request's head (request line and header lines) may
    /// take: a bigger one is answered `431 Request Header Fields Too Large`
    /// and the connection closed, whether it arrives in one piece or many
    /// (Node's `maxHeaderSize`). Default 16 KiB; 1 KiB to 64 MiB.
    pub max_header_size: usize,
    /// A message bus shared with other servers (Redis, NATS: cargo
    /// features `redis`, `nats`): publishes on any of them reach the
    /// subscribers of all. See [`Bus`](crate::Bus). Default `None`: pub/sub
    /// stays within this server.
    pub bus: Option<crate::Bus>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            hostname: "0.0.0.0".into(),
            port: 3000,
            unix: None,
            websocket: WebSocketOptions::default(),
            tls: None,
            reuse_port: false,
            stop_grace_period: Duration::from_secs(5),
            queue_limit: 65_536,
            threads: 1,
            max_request_body_size: 128 * 1024 * 1024,
            max_header_size: 16 * 1024,
            bus: None,
        }
    }
}

/// WebSocket options: Bun's `websocket: { ... }` settings with Bun's
/// defaults (not uWebSockets' own), plus the few uWebSockets has and Bun
/// hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketOptions {
    /// Largest message accepted, in bytes (Bun's `maxPayloadLength`). A
    /// larger one, whole, fragmented or once inflated, fails the connection
    /// with a close frame 1009 "Received too big message", as Bun does;
    /// `close` sees 1009 too. Default 16 MiB; at most `u32::MAX`, at least 1.
    pub max_payload_length: usize,
    /// Seconds without any received data before the connection is closed
    /// (Bun's `idleTimeout`). With [`send_pings`](Self::send_pings) a ping
    /// is sent first and the peer's answer keeps the socket alive. `0`
    /// turns it off. Values 1 to 7 are rounded up to 8, as Bun does
    /// (uWebSockets' timer granularity is 4 s); more than 960 is an error.
    /// Default 120.
    pub idle_timeout: u32,
    /// Bytes of unsent data a socket may buffer (Bun's `backpressureLimit`).
    /// Past it, sends return [`SendStatus::Dropped`](crate::SendStatus).
    /// `0` means no limit. Default 1 MiB; at most `u32::MAX`.
    pub backpressure_limit: usize,
    /// Close a socket that goes past `backpressure_limit` (Bun's
    /// `closeOnBackpressureLimit`). Default `false`.
    pub close_on_backpressure_limit: bool,
    /// Send a ping when the idle timeout is near (Bun's `sendPings`).
    /// Default `true`.
    pub send_pings: bool,
    /// Whether [`ServerWebSocket::publish`](crate::ServerWebSocket::publish)
    /// also delivers to the publishing socket (Bun's `publishToSelf`).
    /// Default `false`.
    pub publish_to_self: bool,
    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it
    /// (Bun's `perMessageDeflate`). `None` (the default) is Bun's `false`;
    /// `Some(PerMessageDeflate::default())` is Bun's `true`. Clients that do
    /// not offer it still connect, uncompressed. Only sends asked to
    /// compress (`send(data, true)`, `publish(.., true)`) are compressed.
    pub per_message_deflate: Option<PerMessageDeflate>,
    /// Minutes after which a socket is closed whatever it does (uWebSockets'
    /// `maxLifetime`, hidden by Bun). `0` turns it off; at most 240.
    /// Default 0.
    pub max_lifetime: u32,
    /// Whether a successful send resets the idle timer (uWebSockets'
    /// `resetIdleTimeoutOnSend`, hidden by Bun). Default `false`: with
    /// `true`, a server that only pushes never notices a dead client.
    pub reset_idle_timeout_on_send: bool,
    /// Which subprotocol an upgrade answers when `fetch` picks none
    /// ([`UpgradeOptions::protocol`](crate::UpgradeOptions::protocol) is
    /// `None`). Default: the client's first offer, as Bun does.
    pub subprotocols: SubprotocolPolicy,
}

/// What an upgrade answers for `Sec-WebSocket-Protocol` when the app did
/// not choose.
///
/// Clients that offer protocols may refuse a server that answers none
/// (Node's `ws`: "Server sent no subprotocol"), so Bun answers the first
/// one offered. A protocol the app does choose must be one the client
/// offered, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubprotocolPolicy {
    /// Answer the client's first offer (Bun).
    #[default]
    FirstOffered,
    /// Answer only a protocol the app chose; none otherwise.
    Explicit,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        WebSocketOptions {
            max_payload_length: 16 * 1024 * 1024,
            idle_timeout: 120,
            backpressure_limit: 1024 * 1024,
            close_on_backpressure_limit: false,
            send_pings: true,
            publish_to_self: false,
            per_message_deflate: None,
            max_lifetime: 0,
            reset_idle_timeout_on_send: false,
            subprotocols: SubprotocolPolicy::FirstOffered,
        }
    }
}

/// Bun's `perMessageDeflate: { compress, decompress }`: how much memory
/// each direction may use. The default, `Shared` both ways, is what Bun's
/// `perMessageDeflate: true` means.
///
/// ```
/// use uws::{Compressor, PerMessageDeflate, WebSocketOptions};
/// // websocket: { perMessageDeflate: { compress: "16KB", decompress: "shared" } }
/// let options = WebSocketOptions {
///     per_message_deflate: Some(PerMessageDeflate { compress: Compressor::Kb16, decompress: Compressor::Shared }),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerMessageDeflate {
    /// The compressor for what the server sends. `Disable` never compresses
    /// (sends asked to compress go out plain).
    pub compress: Compressor,
    /// The decompressor for what clients send. Once the extension is
    /// negotiated a client may compress, so `Disable` here means `Shared`.
    pub decompress: Compressor,
}

impl Default for PerMessageDeflate {
    fn default() -> Self {
        PerMessageDeflate {
            compress: Compressor::Shared,
            decompress: Compressor::Shared,
        }
    }
}

impl PerMessageDeflate {
    /// uWebSockets' CompressOptions bits.
    fn bits(self) -> u32 {
        use Compressor::*;
        if self.compress == Disable && self.decompress == Disable {
            return 0;
        }
        let compressor = match self.compress {
            Disable | Shared => 1,
            Kb3 => 9 << 4 | 1,
            Kb4 => 9 << 4 | 2,
            Kb8 => 10 << 4 | 3,
            Kb16 => 11 << 4 | 4,
            Kb32 => 12 << 4 | 5,
            Kb64 => 13 << 4 | 6,
            Kb128 => 14 << 4 | 7,
            Dedicated | Kb256 => 15 << 4 | 8,
        };
        let decompressor = match self.decompress {
            Disable | Shared => 1 << 8,
            Kb3 | Kb4 => 12 << 8,
            Kb8 => 13 << 8,
            Kb16 => 14 << 8,
            Dedicated | Kb32 | Kb64 | Kb128 | Kb256 => 15 << 8,
        };
        compressor | decompressor
    }
}

/// Bun's `Compressor` values: `"disable"`, `"shared"`, `"dedicated"`,
/// `"3KB"` ... `"256KB"`. A shared (de)compressor serves every socket of
/// the thread with one zlib stream and no context takeover; a dedicated one
/// keeps a sliding window per socket (better ratio, that much memory per
/// socket). Decompressor windows stop at 32 KB (zlib's largest window):
/// larger sizes mean 32 KB there, 3KB means 4 KB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    /// `"disable"`.
    Disable,
    /// `"shared"`.
    Shared,
    /// `"dedicated"`: the largest dedicated window (256 KB / 32 KB).
    Dedicated,
    /// `"3KB"`.
    Kb3,
    /// `"4KB"`.
    Kb4,
    /// `"8KB"`.
    Kb8,
    /// `"16KB"`.
    Kb16,
    /// `"32KB"`.
    Kb32,
    /// `"64KB"`.
    Kb64,
    /// `"128KB"`.
    Kb128,
    /// `"256KB"`.
    Kb256,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidOption {
        name,
        reason: reason.into(),
    }
}

impl ServeOptions {
    /// The most event loops [`threads`](Self::threads) may ask for.
    pub const MAX_THREADS: usize = 1024;

    /// Checks the server-wide values (the WebSocket ones are checked by
    /// [`WebSocketOptions::to_behavior`]).
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.threads > Self::MAX_THREADS {
            return Err(invalid("threads", "must be at most 1024"));
        }
        if self.queue_limit == 0 {
            return Err(invalid("queue_limit", "must be at least 1"));
        }
        if self.stop_grace_period > Duration::from_secs(u32::MAX as u64 / 1000) {
            return Err(invalid("stop_grace_period", "must be under 49 days"));
        }
        self.header_limit()?;
        Ok(())
    }

    /// [`max_header_size`](Self::max_header_size), checked.
    pub(crate) fn header_limit(&self) -> Result<u32, Error> {
        match self.max_header_size {
            n @ 1024..=0x400_0000 => Ok(n as u32),
            _ => Err(invalid(
                "max_header_size",
                "must be between 1024 bytes and 64 MiB",
            )),
        }
    }
}

impl WebSocketOptions {
    /// Checks every value and fills the native behavior's settings (its
    /// handlers are left empty).
    pub(crate) fn to_behavior(&self) -> Result<sys::uws_ws_behavior_t, Error> {
        let max_payload_length = u32::try_from(self.max_payload_length)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                invalid(
                    "max_payload_length",
                    "must be between 1 and 4294967295 bytes",
                )
            })?;
        let max_backpressure = u32::try_from(self.backpressure_limit)
            .map_err(|_| invalid("backpressure_limit", "must be at most 4294967295 bytes"))?;
        let idle_timeout = match self.idle_timeout {
            0 => 0,
            1..=7 => 8,
            n @ 8..=960 => n as u16,
            _ => {
                return Err(invalid(
                    "idle_timeout",
                    "must be at most 960 seconds (0 turns it off)",
                ))
            }
        };
        if self.max_lifetime > 240 {
            return Err(invalid(
                "max_lifetime",
                "must be at most 240 minutes (0 turns it off)",
            ));
        }
        Ok(sys::uws_ws_behavior_t {
            compression: self.per_message_deflate.map_or(0, PerMessageDeflate::bits),
            max_payload_length,
            idle_timeout,
            max_backpressure,
            close_on_backpressure_limit: self.close_on_backpressure_limit.into(),
            reset_idle_timeout_on_send: self.reset_idle_timeout_on_send.into(),
            send_pings_automatically: self.send_pings.into(),
            max_lifetime: self.max_lifetime as u16,
            upgrade: None,
            open: None,
            message: None,
            dropped: None,
            drain: None,
            ping: None,
            pong: None,
            subscription: None,
            close: None,
            subscription_enabled: std::ptr::null(),
            ctx: std::ptr::null_mut(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_maps_onto_uwebsockets_options() {
        let bits = |compress, decompress| {
            PerMessageDeflate {
                compress,
                decompress,
            }
            .bits()
        };
        assert_eq!(
            PerMessageDeflate::default().bits(),
            0x101,
            "shared both ways, Bun's `true`"
        );
        assert_eq!(bits(Compressor::Disable, Compressor::Disable), 0);
        assert_eq!(
            bits(Compressor::Dedicated, Compressor::Dedicated),
            (15 << 4 | 8) | 15 << 8
        );
        assert_eq!(
            bits(Compressor::Kb3, Compressor::Kb3),
            (9 << 4 | 1) | 12 << 8
        );
        assert_eq!(
            bits(Compressor::Kb16, Compressor::Kb256),
            (11 << 4 | 4) | 15 << 8
        );
    }

    fn behavior(f: impl FnOnce(&mut WebSocketOptions)) -> Result<sys::uws_ws_behavior_t, Error> {
        let mut o = WebSocketOptions::default();
        f(&mut o);
        o.to_behavior()
    }

    #[test]
    fn defaults_are_buns() {
        let b = behavior(|_| {}).unwrap();
        assert_eq!(b.max_payload_length, 16 << 20);
        assert_eq!(b.idle_timeout, 120);
        assert_eq!(b.max_backpressure, 1 << 20);
        assert_eq!(b.close_on_backpressure_limit, 0);
        assert_eq!(b.send_pings_automatically, 1);
        assert_eq!(b.reset_idle_timeout_on_send, 0);
        assert_eq!(b.max_lifetime, 0);
    }

    #[test]
    fn idle_timeout_rounds_small_values_up_and_refuses_large_ones() {
        for n in 1..=7 {
            assert_eq!(behavior(|o| o.idle_timeout = n).unwrap().idle_timeout, 8);
        }
        assert_eq!(behavior(|o| o.idle_timeout = 0).unwrap().idle_timeout, 0);
        assert_eq!(
            behavior(|o| o.idle_timeout = 960).unwrap().idle_timeout,
            960
        );
        for n in [961, 65536, u32::MAX] {
            let e = behavior(|o| o.idle_timeout = n).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidOption {
                        name: "idle_timeout",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn server_wide_values_are_checked() {
        assert!(ServeOptions::default().check().is_ok());
        let zero = ServeOptions {
            queue_limit: 0,
            ..Default::default()
        };
        assert!(matches!(
            zero.check(),
            Err(Error::InvalidOption {
                name: "queue_limit",
                ..
            })
        ));
        let forever = ServeOptions {
            stop_grace_period: Duration::from_secs(u64::MAX),
            ..Default::default()
        };
        assert!(forever.check().is_err());
    }

    #[test]
    fn out_of_range_values_are_errors() {
        assert!(behavior(|o| o.max_lifetime = 241).is_err());
        assert_eq!(
            behavior(|o| o.max_lifetime = 240).unwrap().max_lifetime,
            240
        );
        assert!(behavior(|o| o.max_payload_length = 0).is_err());
        let serve = |n| {
            ServeOptions {
                max_header_size: n,
                ..Default::default()
            }
            .header_limit()
        };
        assert_eq!(ServeOptions::default().header_limit().unwrap(), 16 * 1024);
        assert_eq!(serve(1024).unwrap(), 1024);
        assert_eq!(serve(64 << 20).unwrap(), 64 << 20);
        assert!(serve(1023).is_err());
        assert!(serve((64 << 20) + 1).is_err());
        assert!(behavior(|o| o.max_payload_length = u32::MAX as usize + 1).is_err());
        assert!(behavior(|o| o.backpressure_limit = u32::MAX as usize + 1).is_err());
        assert_eq!(
            behavior(|o| o.per_message_deflate = None)
                .unwrap()
                .compression,
            0
        );
    }
}

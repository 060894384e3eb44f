//! Helpers for what the native side hands us: byte slices from pointers,
//! addresses from raw bytes.

use std::ffi::c_char;
use std::net::IpAddr;

/// # Safety
/// `data` must point to `len` readable bytes valid for `'a` (or `len` must
/// be 0, when it may be anything, null included).
pub(crate) unsafe fn bytes<'a>(data: *const c_char, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(data.cast(), len) }
    }
}

/// An IP from the 4 or 16 raw bytes uSockets writes (IPv4-mapped IPv6
/// addresses come back as IPv4).
pub(crate) fn ip_from_raw(buf: &[u8; 16], len: i32) -> Option<IpAddr> {
    match len {
        4 => Some(IpAddr::from([buf[0], buf[1], buf[2], buf[3]])),
        16 => {
            let v6 = std::net::Ipv6Addr::from(*buf);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

/// A native timer on `loop_` (`keeps_loop`: it keeps `run` going), not set
/// yet; the caller closes it once with `uws_timer_close`. Fails when the
/// process has no descriptor left for it.
pub(crate) fn timer(
    loop_: *mut crate::sys::uws_loop_t,
    keeps_loop: bool,
) -> Result<*mut crate::sys::uws_timer_t, crate::Error> {
    // SAFETY: `uws_timer_create` only needs a live loop, which every
    // caller passes (its server's or its thread's).
    let timer = unsafe { crate::sys::uws_timer_create(loop_, i32::from(!keeps_loop)) };
    if timer.is_null() {
        return Err(crate::Error::Resources {
            what: "a timer",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(timer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_is_reported_as_ipv4() {
        let mut buf = [0u8; 16];
        buf[10] = 0xff;
        buf[11] = 0xff;
        buf[12..].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(ip_from_raw(&buf, 16), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(ip_from_raw(&buf, 0), None);
        assert_eq!(ip_from_raw(&buf, 4), Some(IpAddr::from([0, 0, 0, 0])));
    }
}

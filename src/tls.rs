//! TLS options (Bun's `tls: { cert, key, ... }`) and their translation to
//! what uSockets loads.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::sys;

/// PEM data, from a file or in memory (Bun's `Bun.file(path)` or a string).
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A PEM file.
    File(PathBuf),
    /// PEM text. uSockets loads certificates from files, so this is written
    /// to a private temporary file (mode 0600) that is removed as soon as
    /// the server has loaded it.
    Memory(String),
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(p) => f.debug_tuple("File").field(p).finish(),
            Pem::Memory(s) => write!(f, "Memory(<{} bytes>)", s.len()),
        }
    }
}

/// Bun's `tls` options: serve `wss://` (and `https://`) with this
/// certificate. Needs the `tls` cargo feature.
///
/// ```
/// use uws::{Pem, ServeOptions, TlsOptions};
/// // Bun.serve({ tls: { cert: Bun.file("cert.pem"), key: Bun.file("key.pem") }, ... })
/// let options = ServeOptions {
///     tls: Some(TlsOptions::new(Pem::File("cert.pem".into()), Pem::File("key.pem".into()))),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The certificate chain (leaf first).
    pub cert: Pem,
    /// The private key.
    pub key: Pem,
    /// The key's passphrase, if it is encrypted.
    pub passphrase: Option<String>,
    /// CA certificates: when set, the server asks clients for a certificate
    /// and refuses one that none of these CAs signed. A client that sends
    /// no certificate is still accepted (uSockets requests client
    /// certificates but does not require them).
    pub ca: Option<Pem>,
    /// Diffie-Hellman parameters file (Bun's `dhParamsFile`).
    pub dh_params_file: Option<PathBuf>,
    /// Extra host names with their own certificates, picked by SNI (Bun's
    /// array of `tls` objects with `serverName`). Patterns like
    /// `*.example.com` are allowed. Their own `server_names` are ignored.
    pub server_names: Vec<(String, TlsOptions)>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<hidden>"))
            .field("ca", &self.ca)
            .field("dh_params_file", &self.dh_params_file)
            .field("server_names", &self.server_names)
            .finish()
    }
}

impl TlsOptions {
    /// A certificate chain and its key; nothing else set.
    pub fn new(cert: Pem, key: Pem) -> Self {
        TlsOptions {
            cert,
            key,
            passphrase: None,
            ca: None,
            dh_params_file: None,
            server_names: Vec::new(),
        }
    }
}

/// Temporary files holding in-memory PEM, removed on drop.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn write(&mut self, name: &str, text: &str) -> Result<PathBuf, Error> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = match &self.0 {
            Some(dir) => dir.clone(),
            None => {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let dir = std::env::temp_dir().join(format!("uws-tls-{}-{n}", std::process::id()));
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| tls_error(&dir, e))?;
                self.0 = Some(dir.clone());
                dir
            }
        };
        let path = dir.join(name);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| tls_error(&path, e))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

fn tls_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn c_path(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| tls_error(path, "path contains a NUL byte"))
}

/// One set of options, ready for uSockets: C strings pointing at files.
pub(crate) struct NativeTls {
    cert: CString,
    key: CString,
    passphrase: Option<CString>,
    ca: Option<CString>,
    dh: Option<CString>,
    /// For error messages.
    pub(crate) cert_path: PathBuf,
    pub(crate) key_path: PathBuf,
}

impl NativeTls {
    pub(crate) fn options(&self) -> sys::uws_tls_options_t {
        let opt = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        sys::uws_tls_options_t {
            key_file_name: self.key.as_ptr(),
            cert_file_name: self.cert.as_ptr(),
            passphrase: opt(&self.passphrase),
            dh_params_file_name: opt(&self.dh),
            ca_file_name: opt(&self.ca),
            ssl_ciphers: std::ptr::null(),
            ssl_prefer_low_memory_usage: 0,
        }
    }

    /// Says what went wrong when uSockets refused these files.
    pub(crate) fn refused(&self) -> Error {
        Error::Tls {
            path: format!("{} / {}", self.cert_path.display(), self.key_path.display()),
            reason: openssl_errors()
                .unwrap_or_else(|| "OpenSSL refused the certificate or key".into()),
        }
    }
}

/// Everything a TLS server loads: the main options, the SNI ones, and the
/// temporary files behind in-memory PEM (kept until the server has loaded
/// them).
pub(crate) struct Loaded {
    pub(crate) main: NativeTls,
    pub(crate) server_names: Vec<(CString, NativeTls)>,
    _temp: TempDir,
}

impl TlsOptions {
    pub(crate) fn load(&self) -> Result<Loaded, Error> {
        if !cfg!(feature = "tls") {
            return Err(Error::InvalidOption {
                name: "tls",
                reason: "uws was built without the `tls` cargo feature".into(),
            });
        }
        let mut temp = TempDir(None);
        let main = self.native(&mut temp, "main")?;
        let mut server_names = Vec::new();
        for (i, (name, options)) in self.server_names.iter().enumerate() {
            let pattern = CString::new(name.as_str()).map_err(|_| Error::InvalidOption {
                name: "tls.server_names",
                reason: "a server name contains a NUL byte".into(),
            })?;
            server_names.push((pattern, options.native(&mut temp, &format!("sni{i}"))?));
        }
        Ok(Loaded {
            main,
            server_names,
            _temp: temp,
        })
    }

    fn native(&self, temp: &mut TempDir, tag: &str) -> Result<NativeTls, Error> {
        let mut file = |pem: &Pem, what: &str| -> Result<PathBuf, Error> {
            match pem {
                Pem::File(path) => {
                    fs::File::open(path).map_err(|e| tls_error(path, e))?;
                    Ok(path.clone())
                }
                Pem::Memory(text) => temp.write(&format!("{tag}-{what}.pem"), text),
            }
        };
        let cert_path = file(&self.cert, "cert")?;
        let key_path = file(&self.key, "key")?;
        let ca = self.ca.as_ref().map(|ca| file(ca, "ca")).transpose()?;
        if let Some(dh) = &self.dh_params_file {
            fs::File::open(dh).map_err(|e| tls_error(dh, e))?;
        }
        let passphrase = self
            .passphrase
            .as_deref()
            .map(CString::new)
            .transpose()
            .map_err(|_| Error::InvalidOption {
                name: "tls.passphrase",
                reason: "contains a NUL byte".into(),
            })?;
        Ok(NativeTls {
            cert: c_path(&cert_path)?,
            key: c_path(&key_path)?,
            passphrase,
            ca: ca.as_deref().map(c_path).transpose()?,
            dh: self.dh_params_file.as_deref().map(c_path).transpose()?,
            cert_path,
            key_path,
        })
    }
}

/// Drains OpenSSL's error queue of this thread into one message.
#[cfg(feature = "tls")]
pub(crate) fn openssl_errors() -> Option<String> {
    let mut messages = Vec::new();
    loop {
        // SAFETY: reads and pops this thread's OpenSSL error queue.
        let code = unsafe { openssl_sys::ERR_get_error() };
        if code == 0 {
            break;
        }
        // SAFETY: OpenSSL returns a static NUL-terminated string or null.
        let (lib, reason) = unsafe {
            let text = |p: *const std::ffi::c_char| {
                (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
            };
            (
                text(openssl_sys::ERR_lib_error_string(code)),
                text(openssl_sys::ERR_reason_error_string(code)),
            )
        };
        messages.push(match (lib, reason) {
            (Some(lib), Some(reason)) => format!("{lib}: {reason}"),
            (_, Some(reason)) => reason,
            _ => format!("OpenSSL error {code:#x}"),
        });
    }
    (!messages.is_empty()).then(|| messages.join("; "))
}

#[cfg(not(feature = "tls"))]
pub(crate) fn openssl_errors() -> Option<String> {
    None
}

/// Whether the app's private key matches its certificate (uSockets does not
/// check).
#[cfg(feature = "tls")]
pub(crate) fn key_matches(app: *mut sys::uws_app_t) -> bool {
    // SAFETY: a live TLS app; its SSL_CTX is valid while the app is.
    unsafe {
        let ctx = sys::uws_app_native_handle(1, app);
        !ctx.is_null() && openssl_sys::SSL_CTX_check_private_key(ctx.cast()) == 1
    }
}

#[cfg(not(feature = "tls"))]
pub(crate) fn key_matches(_app: *mut sys::uws_app_t) -> bool {
    true
}

/// Error for a key that does not match its certificate.
pub(crate) fn mismatch(native: &NativeTls) -> Error {
    let mut e = native.refused();
    if let Error::Tls { reason, .. } = &mut e {
        *reason = format!("the private key does not match the certificate ({reason})");
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let mut o = TlsOptions::new(
            Pem::Memory("-----BEGIN CERT".into()),
            Pem::Memory("secret key".into()),
        );
        o.passphrase = Some("hunter2".into());
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("secret key") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn in_memory_pem_lives_in_private_files_removed_on_drop() {
        let mut temp = TempDir(None);
        let path = temp.write("k.pem", "KEY").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "KEY");
        drop(temp);
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let o = TlsOptions::new(
            Pem::File("/nonexistent/cert.pem".into()),
            Pem::Memory(String::new()),
        );
        match o.native(&mut TempDir(None), "t") {
            Err(Error::Tls { path, .. }) => assert_eq!(path, "/nonexistent/cert.pem"),
            other => panic!("{:?}", other.err()),
        }
    }
}

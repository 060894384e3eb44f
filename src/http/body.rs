//! A request body, read whole: what Bun's `await req.arrayBuffer()` and
//! `await req.text()` give.

/// The whole body of a request (Content-Length or chunked), at most
/// [`ServeOptions::max_request_body_size`](crate::ServeOptions::max_request_body_size)
/// bytes.
///
/// ```
/// use uws::Body;
///
/// let body = Body::from(b"{\"n\":1}".to_vec());
/// // await req.text()
/// assert_eq!(body.text().unwrap(), "{\"n\":1}");
/// // await req.json(): with the JSON crate of your choice, e.g.
/// // let v: serde_json::Value = serde_json::from_slice(body.bytes())?;
/// assert_eq!(body.bytes().len(), 7);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body(Vec<u8>);

impl Body {
    /// The bytes (Bun's `arrayBuffer()`).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The body as UTF-8 text (Bun's `text()`, which replaces invalid
    /// bytes; this refuses them).
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The body as an owned string, when it is UTF-8.
    pub fn into_text(self) -> Result<String, std::string::FromUtf8Error> {
        String::from_utf8(self.0)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(bytes)
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

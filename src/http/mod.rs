//! The HTTP side of a server: the request `fetch` sees and the response it
//! returns.

mod request;
mod response;

pub use request::Request;
pub use response::Response;
pub(crate) use response::{framing_header, valid_header};

//! The HTTP side of a server: the request `fetch` sees and the response it
//! returns.

mod body;
pub(crate) mod pending;
mod request;
mod response;

pub use body::Body;
pub(crate) use pending::PendingTable;
pub use pending::{BodyFuture, BodyWriter, Flow, PendingRequest};
pub use request::Request;
pub use response::Response;
pub(crate) use response::{framing_header, valid_header, write_header};

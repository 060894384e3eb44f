//! What runs user code, below every module that calls it: the [`Gate`]
//! and the panic helpers it uses.

mod gate;
mod panic;

pub(crate) use gate::{Entered, Gate};
pub(crate) use panic::{catch, caught, drop_contained, drop_payload, resume};

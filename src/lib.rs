//! placeholder
#[cfg(not(feature = "bindgen"))]
#[rustfmt::skip]
#[allow(non_camel_case_types, non_upper_case_globals, dead_code, clippy::all)]
mod sys;
#[cfg(feature = "bindgen")]
#[allow(non_camel_case_types, non_upper_case_globals, dead_code, clippy::all)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/sys.rs"));
}

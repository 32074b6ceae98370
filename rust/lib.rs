//! Fast JSON encoding of token ID arrays for the tinker SDK.
//!
//! [`encode`] is plain Rust with no Python types, so `cargo test` exercises it
//! without an interpreter. The PyO3 glue lives in `python.rs` behind the `python`
//! feature, which maturin turns on when it builds the extension module.

pub mod encode;
pub mod floats;
pub mod json_text;

#[cfg(feature = "python")]
mod document;
#[cfg(feature = "python")]
mod object_layout;
#[cfg(feature = "python")]
mod python;
#[cfg(feature = "python")]
mod python_floats;
#[cfg(feature = "python")]
mod python_plain;

#[cfg(test)]
#[path = "encode_tests.rs"]
mod encode_tests;

#[cfg(test)]
#[path = "floats_tests.rs"]
mod floats_tests;

#[cfg(test)]
#[path = "floats_reference.rs"]
mod floats_reference;

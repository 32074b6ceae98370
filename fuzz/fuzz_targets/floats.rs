//! Fuzz target over the float encoder: strided float32 and float64 buffers from the
//! input bytes, compared with the reference for Python's repr that the unit tests use.
//!
//! The first bytes choose the element type, byte order, stride, start and length.
//! The rest is the buffer, so every bit pattern comes up: subnormals, NaN payloads
//! and infinities too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tinker_accel::encode::ByteOrder;
use tinker_accel::floats::{encode_buffer, FloatError, FloatLayout, FloatType};

// The reference the float encoder's unit tests use, shared as a source file.
#[path = "../../rust/floats_reference.rs"]
#[allow(dead_code)]
mod reference;

fn element_at(memory: &[u8], at: usize, element: FloatType, order: ByteOrder) -> f64 {
    let size = element.size();
    let mut bytes = [0u8; 8];
    bytes[..size].copy_from_slice(&memory[at..at + size]);
    if order == ByteOrder::Big {
        bytes[..size].reverse();
    }
    match element {
        FloatType::F32 => f64::from(f32::from_le_bytes(bytes[..4].try_into().unwrap())),
        FloatType::F64 => f64::from_le_bytes(bytes),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (control, memory) = data.split_at(4);
    let element = if control[0] & 1 == 0 {
        FloatType::F32
    } else {
        FloatType::F64
    };
    let order = if control[0] & 2 == 0 {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    };
    let stride = isize::from(control[1] as i8);
    let start = usize::from(control[2]).min(memory.len());
    let len = usize::from(control[3]);
    let layout = FloatLayout {
        element,
        order,
        len,
        stride,
    };
    let result = encode_buffer(memory, start, layout);
    let addresses: Option<Vec<usize>> = (0..len)
        .map(|index| {
            let at = usize::try_from(start as isize + index as isize * stride).ok()?;
            (at + element.size() <= memory.len()).then_some(at)
        })
        .collect();
    let Some(addresses) = addresses else {
        assert!(matches!(result, Err(FloatError::OutOfBounds { .. })));
        return;
    };
    let values: Vec<f64> = addresses
        .iter()
        .map(|&at| element_at(memory, at, element, order))
        .collect();
    match values.iter().position(|value| !value.is_finite()) {
        Some(index) => match result {
            Err(FloatError::NotFinite {
                index: reported, ..
            }) => assert_eq!(reported, index),
            other => panic!("expected NotFinite at {index}, got {other:?}"),
        },
        None => {
            let expected = reference::python_array(&values);
            assert_eq!(
                String::from_utf8(result.unwrap()).unwrap(),
                expected,
                "{layout:?} from {start}"
            );
        }
    }
});

//! Fuzz target over the float encoder: strided float32 and float64 buffers from the
//! input bytes, compared with Python's repr built from Rust's own shortest digits.
//!
//! The first bytes choose the element type, byte order, stride, start and length.
//! The rest is the buffer, so every bit pattern comes up: subnormals, NaN payloads
//! and infinities too.

#![no_main]

use std::fmt::Write;

use libfuzzer_sys::fuzz_target;
use tinker_accel::encode::ByteOrder;
use tinker_accel::floats::{encode_buffer, FloatError, FloatLayout, FloatType};

/// Returns the exact decimal digits of a finite nonzero `value` (no trailing zeros)
/// and the power of ten of the first one, if there are at most 19 of them.
fn exact_expansion(value: f64) -> Option<(String, i32)> {
    let bits = value.abs().to_bits();
    let (biased, fraction) = ((bits >> 52) as i32, bits & ((1 << 52) - 1));
    let (mut significand, mut exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let shift = significand.trailing_zeros() as i32;
    significand >>= shift;
    exponent += shift;
    let (digits, first) = if exponent >= 0 {
        let scaled = u128::from(significand).checked_mul(1u128.checked_shl(exponent as u32)?)?;
        let digits = scaled.to_string();
        let first = digits.len() as i32 - 1;
        (digits.trim_end_matches('0').to_owned(), first)
    } else {
        let k = exponent.unsigned_abs();
        let scaled = 5u128.checked_pow(k)?.checked_mul(u128::from(significand))?;
        let digits = scaled.to_string();
        (digits.clone(), digits.len() as i32 - 1 - k as i32)
    };
    (digits.len() <= 19).then_some((digits, first))
}

/// Returns the shortest round-trip digits of a finite nonzero `value` and the power
/// of ten of the first one, as CPython picks them.
///
/// On an exact tie between two shortest candidates CPython keeps the one with the
/// even last digit. Rust's `{:e}` takes the upper one.
fn shortest_digits(value: f64) -> (String, i32) {
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap();
    if let Some((exact, exact_exponent)) = exact_expansion(value) {
        let tie = exact.len() == digits.len() + 1 && exact.ends_with('5');
        let lower = &exact[..digits.len()];
        let even = lower.bytes().last().is_some_and(|digit| digit % 2 == 0);
        if tie && even && lower != digits {
            let text = format!("{}.{}e{exact_exponent}", &lower[..1], &lower[1..]);
            if text.parse::<f64>() == Ok(value.abs()) {
                return (lower.to_owned(), exact_exponent);
            }
        }
    }
    (digits, exponent)
}

/// Writes `value` as Python's `repr(float)` does.
fn python_repr(out: &mut String, value: f64) {
    if value.is_sign_negative() {
        out.push('-');
    }
    if value == 0.0 {
        out.push_str("0.0");
        return;
    }
    let (digits, exponent) = shortest_digits(value);
    if (-4..16).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exponent - 1) as usize));
            out.push_str(&digits);
        } else {
            let integer_len = exponent as usize + 1;
            if digits.len() <= integer_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(integer_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..integer_len]);
                out.push('.');
                out.push_str(&digits[integer_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        write!(out, "e{exponent_sign}{:02}", exponent.abs()).unwrap();
    }
}

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
            let mut expected = String::from("[");
            for (index, &value) in values.iter().enumerate() {
                if index > 0 {
                    expected.push(',');
                }
                python_repr(&mut expected, value);
            }
            expected.push(']');
            assert_eq!(
                String::from_utf8(result.unwrap()).unwrap(),
                expected,
                "{layout:?} from {start}"
            );
        }
    }
});

//! A deliberately simple reference for Python's `repr(float)`, used by the float
//! encoder's tests and by its fuzz target: the standard library's shortest digits,
//! corrected for ties as CPython breaks them, laid out with Python's rules as plain
//! string operations.

use std::fmt::Write as _;

/// Returns the standard library's shortest round-trip digits of a finite nonzero
/// `value`, without sign or point, and the power of ten of the first one. `{:e}`
/// writes them as `1.5e300` or `-1e-5`.
pub fn std_shortest_digits(value: f64) -> (String, i32) {
    split_scientific(&format!("{value:e}"))
}

pub fn split_scientific(text: &str) -> (String, i32) {
    let (mantissa, exponent) = text.split_once('e').expect("{:e} writes an exponent");
    let digits = mantissa.trim_start_matches('-').replace('.', "");
    (
        digits,
        exponent.parse().expect("the exponent is an integer"),
    )
}

/// Returns the exact decimal expansion of the finite nonzero `value` as significant
/// digits and the power of ten of the first one, if it has at most 19 digits. Only
/// such a value can lie halfway between two shortest candidates of at most 17 digits.
pub fn short_exact_expansion(value: f64) -> Option<(String, i32)> {
    let bits = value.abs().to_bits();
    let biased_exponent = (bits >> 52) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut significand, mut exponent) = if biased_exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased_exponent - 1075)
    };
    // value = significand * 2^exponent, with an odd significand.
    let zeros = significand.trailing_zeros();
    significand >>= zeros;
    exponent += zeros as i32;
    let (digits, first) = if exponent >= 0 {
        let integer = u128::from(significand).checked_shl(exponent as u32)?;
        if integer >> exponent != u128::from(significand) {
            return None;
        }
        let digits = integer.to_string();
        let first = digits.len() as i32 - 1;
        (digits.trim_end_matches('0').to_string(), first)
    } else {
        // significand * 5^k / 10^k, and the odd significand * 5^k has no trailing zero.
        let k = exponent.unsigned_abs();
        let scaled = 5u128.checked_pow(k)?.checked_mul(u128::from(significand))?;
        let digits = scaled.to_string();
        let first = digits.len() as i32 - 1 - k as i32;
        (digits, first)
    };
    (digits.len() <= 19).then_some((digits, first))
}

/// Returns the shortest round-trip digits of a finite nonzero `value` and the power
/// of ten of the first one, as CPython chooses them.
///
/// When the value lies exactly halfway between two shortest candidates, the standard
/// library takes the upper one, where CPython takes the one with the even last digit
/// (`1000000000000000.25` gives `…0.3` against Python's `…0.2`). Such a tie shows in
/// the exact decimal expansion: one digit more than the shortest form, and that
/// digit a 5.
pub fn shortest_digits(value: f64) -> (String, i32) {
    let (digits, exponent) = std_shortest_digits(value);
    let Some((exact, exact_exponent)) = short_exact_expansion(value) else {
        return (digits, exponent);
    };
    let is_tie = exact.len() == digits.len() + 1 && exact.ends_with('5');
    let lower = &exact[..digits.len().min(exact.len())];
    let lower_is_even = lower.bytes().last().is_some_and(|digit| digit % 2 == 0);
    if is_tie && lower_is_even && lower != digits {
        let lower_text = format!("{}.{}e{exact_exponent}", &lower[..1], &lower[1..]);
        if lower_text.parse::<f64>() == Ok(value.abs()) {
            return (lower.to_string(), exact_exponent);
        }
    }
    (digits, exponent)
}

/// Appends `repr(value)` as CPython writes it, for a finite `value`.
///
/// Deliberately simple and separate from the encoder: Python's rules are applied to
/// the digits of `shortest_digits` as plain string operations. The CPython table
/// below anchors it.
pub fn push_python_repr(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push_str(if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        });
        return;
    }
    let (digits, exponent) = shortest_digits(value);
    push_python_layout(out, value < 0.0, &digits, exponent);
}

/// Appends the repr of a nonzero number given by its significant `digits` and the
/// power of ten of the first one, by Python's rules.
pub fn push_python_layout(out: &mut String, negative: bool, digits: &str, exponent: i32) {
    if negative {
        out.push('-');
    }
    if (-4..0).contains(&exponent) {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exponent - 1) as usize));
        out.push_str(digits);
    } else if (0..16).contains(&exponent) {
        let integer_len = exponent as usize + 1;
        if digits.len() <= integer_len {
            out.push_str(digits);
            out.push_str(&"0".repeat(integer_len - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..integer_len]);
            out.push('.');
            out.push_str(&digits[integer_len..]);
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

pub fn python_repr(value: f64) -> String {
    let mut out = String::new();
    push_python_repr(&mut out, value);
    out
}

/// Returns what `json.dumps(values, separators=(",", ":"))` writes, from the reference.
pub fn python_array(values: &[f64]) -> String {
    let mut out = String::from("[");
    for (index, &value) in values.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_python_repr(&mut out, value);
    }
    out.push(']');
    out
}

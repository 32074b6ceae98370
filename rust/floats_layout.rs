//! The byte layout of one array item, `,` and a repr, shared by the vector float
//! paths, which turn it into byte-shuffle templates.

/// Bytes of one item's store. Items take at most 25 bytes, as
/// `,-1.2345678901234567e-308` does.
pub(super) const ITEM_STORE: usize = 32;

/// Notations: 20 fixed ones (first digit at `10^-4` to `10^15`) and the scientific
/// one. Each is laid out without and with a minus sign, which makes the rows.
pub(super) const NOTATIONS: usize = 21;
pub(super) const ROWS: usize = 2 * NOTATIONS;

/// The notation of rows whose first digit is outside `10^-4..10^16`.
pub(super) const SCIENTIFIC: usize = 20;

/// Powers of ten compared with the decimal significand, which has 15 to 17 digits for
/// every normal double: it lies in 10^14..10^17.
pub(super) const TEN_POW_14: i64 = 100_000_000_000_000;
pub(super) const TEN_POW_15: i64 = 1_000_000_000_000_000;
pub(super) const TEN_POW_16: i64 = 10_000_000_000_000_000;
pub(super) const TEN_POW_17: i64 = 100_000_000_000_000_000;
pub(super) const TEN_POW_8: i64 = 100_000_000;

/// Source of one byte of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ItemByte {
    /// Digit 0 to 16 of the 17-digit significand, the first one at index 0.
    Digit(usize),
    Point,
    Zero,
    Minus,
    Comma,
}

/// Returns the layout of an item in `row`: a comma, a minus sign for rows from
/// `NOTATIONS` on, and then the notation `row % NOTATIONS`.
///
/// For notations 0 to 3, the first digit is at `10^(notation - 4)` and the item is
/// `0.`, zeros and the digits. For 4 to 19 it is at `10^(notation - 4)` and a point
/// follows that digit. `SCIENTIFIC` is the first digit, a point and the others, to
/// which the exponent is added later. Digits past the significant ones are zeros, so
/// an integer such as `100.0` is the digits with a point placed after the third. The
/// bytes past the layout are zeros, which later items overwrite.
pub(super) const fn item_layout(row: usize) -> [ItemByte; ITEM_STORE] {
    let mut out = [ItemByte::Zero; ITEM_STORE];

    out[0] = ItemByte::Comma;
    let mut at = 1;
    if row >= NOTATIONS {
        out[at] = ItemByte::Minus;
        at += 1;
    }
    let notation = row % NOTATIONS;
    if notation < 4 {
        // 0.000ddd: the zeros after the point are the ones before the first digit.
        out[at + 1] = ItemByte::Point;
        at += 2 + (3 - notation);
    }

    // Fixed notation with the first digit at 10^p puts the point after p + 1 digits,
    // and scientific notation puts it after the first.
    let point_after = if notation < 4 {
        usize::MAX
    } else if notation < SCIENTIFIC {
        notation - 4 + 1
    } else {
        1
    };
    let mut digit = 0;
    while digit <= 16 {
        if digit == point_after {
            out[at] = ItemByte::Point;
            at += 1;
        }
        out[at] = ItemByte::Digit(digit);
        at += 1;
        digit += 1;
    }
    out
}

/// Row, length and mantissa length of one item.
pub(super) struct ItemShape {
    pub row: usize,
    pub len: usize,
    /// Bytes of `d.ddd` in scientific notation, after which the exponent starts
    /// (counted after the comma and sign). It is 0 in fixed notation.
    pub mantissa_len: usize,
}

/// Returns the shape of the item of a value whose first significant digit is at
/// `10^first_power`, with `significant` digits (1 to 17) and the given sign.
#[inline(always)]
pub(super) fn item_shape(first_power: i32, significant: usize, negative: bool) -> ItemShape {
    let sign = usize::from(negative);
    let (notation, body_len, mantissa_len) = match first_power {
        // At 10^p >= 0, fixed notation shows at least p + 1 digits, the point and one
        // more digit.
        0..=15 => {
            let p = first_power as usize;
            (p + 4, significant.max(p + 2) + 1, 0)
        }
        // 0.000ddd
        -4..=-1 => (
            (first_power + 4) as usize,
            significant + 1 + first_power.unsigned_abs() as usize,
            0,
        ),
        _ => {
            let mantissa_len = if significant > 1 { significant + 1 } else { 1 };
            let exponent_len = if first_power.unsigned_abs() >= 100 {
                5
            } else {
                4
            };
            (SCIENTIFIC, mantissa_len + exponent_len, mantissa_len)
        }
    };
    ItemShape {
        row: notation + NOTATIONS * sign,
        len: 1 + sign + body_len,
        mantissa_len,
    }
}

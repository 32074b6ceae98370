//! Python's repr of four doubles at once with AVX2, for CPUs without the AVX-512
//! parts that `floats_avx512.rs` needs.
//!
//! The steps are those of the AVX-512 path: Schubfach on four lanes, with each
//! 64-bit by 64-bit product built from four 32-bit multiplies. Each item is then laid
//! out on its own by byte shuffles, two per 16 bytes, from a table of templates.

use std::arch::x86_64::{
    __m128i, __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_andnot_si256, _mm256_blend_epi32,
    _mm256_blendv_epi8, _mm256_castpd_si256, _mm256_castsi256_pd, _mm256_castsi256_si128,
    _mm256_cmpeq_epi64, _mm256_cmpeq_epi8, _mm256_cmpgt_epi64, _mm256_extracti128_si256,
    _mm256_i64gather_epi64, _mm256_loadu_pd, _mm256_movemask_epi8, _mm256_movemask_pd,
    _mm256_mul_epu32, _mm256_mullo_epi32, _mm256_or_si256, _mm256_set1_epi64x, _mm256_set1_epi8,
    _mm256_setzero_si256, _mm256_shuffle_epi32, _mm256_slli_epi64, _mm256_sllv_epi64,
    _mm256_srai_epi32, _mm256_srli_epi64, _mm256_storeu_si256, _mm256_sub_epi32, _mm256_sub_epi64,
    _mm256_unpackhi_epi64, _mm256_unpacklo_epi64, _mm256_xor_si256, _mm_insert_epi8,
    _mm_loadu_si128, _mm_or_si128, _mm_shuffle_epi8, _mm_storeu_si128,
};
use std::ptr;

use super::layout::{
    item_layout, item_shape, ItemByte, ITEM_STORE, ROWS, TEN_POW_14, TEN_POW_15, TEN_POW_16,
    TEN_POW_17, TEN_POW_8,
};
use super::pow10::{POW10_FIRST, POW10_HIGH, POW10_LOW};
use super::{exponent_suffix, MAX_ITEM_BYTES};
use crate::encode::avx2_eight_digits as eight_digits;

/// Returns whether this CPU has AVX2 and SSE4.1, which the path uses. The standard
/// library caches the result of each check.
#[inline(always)]
pub(super) fn is_available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("sse4.1")
}

/// Bytes that one group may write past the end of its last item: each item is
/// written with two 16-byte stores.
pub(super) const GROUP_SLACK: usize = ITEM_STORE - MAX_ITEM_BYTES;

/// Shuffle indices of one item, in two 16-byte halves: `digits` picks from the
/// lane's 16 digits after the first, `extras` from `EXTRAS` with the first digit in
/// byte 0. An index with the top bit set picks a zero, so the two results are ORed.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Template {
    digits: [u8; ITEM_STORE],
    extras: [u8; ITEM_STORE],
}

const EXTRA_POINT: u8 = 1;
const EXTRA_ZERO: u8 = 2;
const EXTRA_MINUS: u8 = 3;
const EXTRA_COMMA: u8 = 4;
const PICK_ZERO: u8 = 0x80;

/// The extra bytes, in the order of the `EXTRA_` positions after the first digit.
const EXTRAS: [u8; 16] = [0, b'.', b'0', b'-', b',', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

const fn template(row: usize) -> Template {
    let layout = item_layout(row);
    let mut template = Template {
        digits: [PICK_ZERO; ITEM_STORE],
        extras: [PICK_ZERO; ITEM_STORE],
    };
    let mut at = 0;
    while at < ITEM_STORE {
        match layout[at] {
            ItemByte::Digit(0) => template.extras[at] = 0,
            ItemByte::Digit(digit) => template.digits[at] = (digit - 1) as u8,
            ItemByte::Point => template.extras[at] = EXTRA_POINT,
            ItemByte::Zero => template.extras[at] = EXTRA_ZERO,
            ItemByte::Minus => template.extras[at] = EXTRA_MINUS,
            ItemByte::Comma => template.extras[at] = EXTRA_COMMA,
        }
        at += 1;
    }
    template
}

/// Templates for every row, 2.6 KiB.
static TEMPLATES: [Template; ROWS] = {
    let mut table = [template(0); ROWS];
    let mut row = 0;
    while row < ROWS {
        table[row] = template(row);
        row += 1;
    }
    table
};

#[target_feature(enable = "avx2")]
#[inline]
fn splat(value: i64) -> __m256i {
    _mm256_set1_epi64x(value)
}

/// Returns all ones in the lanes where `x < y` as unsigned 64-bit numbers.
#[target_feature(enable = "avx2")]
#[inline]
fn less(x: __m256i, y: __m256i) -> __m256i {
    let sign = splat(i64::MIN);
    _mm256_cmpgt_epi64(_mm256_xor_si256(y, sign), _mm256_xor_si256(x, sign))
}

/// Returns all ones in the lanes where `x <= y` as unsigned 64-bit numbers.
#[target_feature(enable = "avx2")]
#[inline]
fn at_most(x: __m256i, y: __m256i) -> __m256i {
    _mm256_xor_si256(less(y, x), splat(-1))
}

/// Returns the high and the low 64 bits of the 128-bit products of the lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn multiply_wide(x: __m256i, y: __m256i) -> (__m256i, __m256i) {
    let x_high = _mm256_srli_epi64::<32>(x);
    let y_high = _mm256_srli_epi64::<32>(y);
    let low_low = _mm256_mul_epu32(x, y);
    let low_high = _mm256_mul_epu32(x, y_high);
    let high_low = _mm256_mul_epu32(x_high, y);
    let high_high = _mm256_mul_epu32(x_high, y_high);
    let low_32 = splat(0xFFFF_FFFF);
    // Bits 32 to 95: at most three 32-bit parts, so the sum cannot overflow.
    let middle = _mm256_add_epi64(
        _mm256_add_epi64(
            _mm256_srli_epi64::<32>(low_low),
            _mm256_and_si256(low_high, low_32),
        ),
        _mm256_and_si256(high_low, low_32),
    );
    let high = _mm256_add_epi64(
        _mm256_add_epi64(high_high, _mm256_srli_epi64::<32>(low_high)),
        _mm256_add_epi64(
            _mm256_srli_epi64::<32>(high_low),
            _mm256_srli_epi64::<32>(middle),
        ),
    );
    let low = _mm256_or_si256(
        _mm256_and_si256(low_low, low_32),
        _mm256_slli_epi64::<32>(middle),
    );
    (high, low)
}

/// Returns `floor((x * factor - offset) / 2^SHIFT)` for lanes holding small signed
/// `x`, where `x * factor` fits in an i32, as the Schubfach logarithm estimates need.
#[target_feature(enable = "avx2")]
#[inline]
fn scaled_floor<const SHIFT: i32>(x: __m256i, factor: i64, offset: i64) -> __m256i {
    // The 32-bit multiply is exact in the low half of each lane. The high half then
    // takes the sign of the shifted low half, which makes the lane a signed 64-bit
    // number again.
    let product = _mm256_mullo_epi32(x, splat(factor));
    let shifted = _mm256_srai_epi32::<SHIFT>(_mm256_sub_epi32(product, splat(offset)));
    // Dwords 0 and 2 of each 128 bits are the low halves, so their signs move up.
    let signs = _mm256_shuffle_epi32::<0b1010_0000>(_mm256_srai_epi32::<31>(shifted));
    _mm256_blend_epi32::<0b1010_1010>(shifted, signs)
}

/// Returns Schubfach's `RoundToOdd(g, cp)`, as `round_to_odd` of the AVX-512 path
/// does, for the 128-bit `g` given as its high and low halves.
#[target_feature(enable = "avx2")]
#[inline]
fn round_to_odd(g_high: __m256i, g_low: __m256i, cp: __m256i) -> __m256i {
    let (x_high, _) = multiply_wide(g_low, cp);
    let (y_high, y_low) = multiply_wide(g_high, cp);
    let middle = _mm256_add_epi64(y_low, x_high);
    // An all-ones carry lane subtracted adds one.
    let high = _mm256_sub_epi64(y_high, less(middle, x_high));
    let sticky = _mm256_and_si256(less(splat(1), middle), splat(1));
    _mm256_or_si256(high, sticky)
}

/// Runs Schubfach on four lanes of bits of positive normal doubles and returns the
/// decimal significands and the powers of ten of their last digits.
#[target_feature(enable = "avx2")]
#[inline]
fn shortest(bits: __m256i) -> (__m256i, __m256i) {
    let zero = _mm256_setzero_si256();
    let fraction = _mm256_and_si256(bits, splat((1 << 52) - 1));
    let biased = _mm256_srli_epi64::<52>(bits);
    let c = _mm256_or_si256(fraction, splat(1 << 52));
    let q = _mm256_sub_epi64(biased, splat(1075));
    let closer = _mm256_and_si256(
        _mm256_cmpeq_epi64(fraction, zero),
        _mm256_cmpgt_epi64(biased, splat(1)),
    );

    let k = _mm256_blendv_epi8(
        scaled_floor::<20>(q, 315_653, 0),
        scaled_floor::<20>(q, 315_653, 131_237),
        closer,
    );
    let minus_k = _mm256_sub_epi64(zero, k);
    let h = _mm256_add_epi64(
        _mm256_add_epi64(q, scaled_floor::<19>(minus_k, 1_741_647, 0)),
        splat(1),
    );
    let index = _mm256_sub_epi64(minus_k, splat(i64::from(POW10_FIRST)));
    // SAFETY: -k lies in POW10_FIRST..=324 for every normal double, so each index is
    // within both tables.
    let (g_high, g_low) = unsafe {
        (
            _mm256_i64gather_epi64::<8>(POW10_HIGH.as_ptr().cast(), index),
            _mm256_i64gather_epi64::<8>(POW10_LOW.as_ptr().cast(), index),
        )
    };

    let cb = _mm256_slli_epi64::<2>(c);
    // Subtracting the all-ones `closer` lanes adds one.
    let cb_lower = _mm256_sub_epi64(_mm256_sub_epi64(cb, splat(2)), closer);
    let cb_upper = _mm256_add_epi64(cb, splat(2));
    let vb = round_to_odd(g_high, g_low, _mm256_sllv_epi64(cb, h));
    let vb_lower = round_to_odd(g_high, g_low, _mm256_sllv_epi64(cb_lower, h));
    let vb_upper = round_to_odd(g_high, g_low, _mm256_sllv_epi64(cb_upper, h));

    let odd = _mm256_and_si256(c, splat(1));
    let lower = _mm256_add_epi64(vb_lower, odd);
    let upper = _mm256_sub_epi64(vb_upper, odd);

    let s = _mm256_srli_epi64::<2>(vb);
    // s / 10 by the multiplier that divides every u64 exactly.
    let (quotient, _) = multiply_wide(s, splat(0xCCCC_CCCC_CCCC_CCCD_u64 as i64));
    let sp = _mm256_srli_epi64::<3>(quotient);
    let sp40 = _mm256_add_epi64(_mm256_slli_epi64::<5>(sp), _mm256_slli_epi64::<3>(sp));
    let up_inside = at_most(lower, sp40);
    let wp_inside = at_most(_mm256_add_epi64(sp40, splat(40)), upper);
    let shorter = _mm256_xor_si256(up_inside, wp_inside);

    let s4 = _mm256_slli_epi64::<2>(s);
    let u_inside = at_most(lower, s4);
    let w_inside = at_most(_mm256_add_epi64(s4, splat(4)), upper);
    let middle = _mm256_add_epi64(s4, splat(2));
    let s_odd = _mm256_cmpeq_epi64(_mm256_and_si256(s, splat(1)), splat(1));
    let round_up = _mm256_or_si256(
        less(middle, vb),
        _mm256_and_si256(_mm256_cmpeq_epi64(vb, middle), s_odd),
    );
    let one_inside = _mm256_xor_si256(u_inside, w_inside);
    let up = _mm256_or_si256(
        _mm256_and_si256(one_inside, w_inside),
        _mm256_andnot_si256(one_inside, round_up),
    );

    let long = _mm256_sub_epi64(s, up);
    let short = _mm256_sub_epi64(sp, wp_inside);
    (
        _mm256_blendv_epi8(long, short, shorter),
        _mm256_sub_epi64(k, shorter),
    )
}

/// Returns a mask of the bytes of `text` that are the digit '0', bit `8 * lane + i`
/// for byte `i` of lane `lane`.
#[target_feature(enable = "avx2")]
#[inline]
fn zero_digit_masks(text: __m256i) -> u32 {
    _mm256_movemask_epi8(_mm256_cmpeq_epi8(text, _mm256_set1_epi8(b'0' as i8))) as u32
}

/// Writes `,repr` for each of the four `values` at `at` and returns the bytes
/// written, or returns `None`, having written nothing, if a value is subnormal, NaN
/// or an infinity.
///
/// # Safety
/// `4 * MAX_ITEM_BYTES + GROUP_SLACK` bytes from `at` must be writable, and the CPU
/// must have the parts `is_available` checks.
#[target_feature(enable = "avx2,sse4.1")]
pub(super) unsafe fn write_group(values: &[f64; 4], at: *mut u8) -> Option<usize> {
    // SAFETY: the array is 32 bytes.
    let bits = _mm256_castpd_si256(unsafe { _mm256_loadu_pd(values.as_ptr()) });
    let zero = _mm256_setzero_si256();
    let magnitude = _mm256_and_si256(bits, splat(i64::MAX));
    let biased = _mm256_srli_epi64::<52>(magnitude);
    let is_zero = _mm256_cmpeq_epi64(magnitude, zero);
    let normal = _mm256_and_si256(
        _mm256_cmpgt_epi64(biased, zero),
        _mm256_cmpgt_epi64(splat(0x7FF), biased),
    );
    if _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_or_si256(normal, is_zero))) != 0xF {
        return None;
    }
    // Zeros are formatted as 1.0, whose first digit then becomes a 0.
    let input = _mm256_blendv_epi8(magnitude, splat(1.0f64.to_bits() as i64), is_zero);
    let (significand, exponent) = shortest(input);

    let sixteen_digits_or_more = at_most(splat(TEN_POW_15), significand);
    let seventeen_digits = at_most(splat(TEN_POW_16), significand);
    let in_range = _mm256_and_si256(
        at_most(splat(TEN_POW_14), significand),
        less(significand, splat(TEN_POW_17)),
    );
    if _mm256_movemask_pd(_mm256_castsi256_pd(in_range)) != 0xF {
        // NOTE: the range above holds for every normal double, so this never happens.
        // The check keeps a mistake there from writing wrong digits.
        return None;
    }
    let times_10 = _mm256_add_epi64(
        _mm256_slli_epi64::<3>(significand),
        _mm256_slli_epi64::<1>(significand),
    );
    let times_100 = _mm256_add_epi64(
        _mm256_slli_epi64::<3>(times_10),
        _mm256_slli_epi64::<1>(times_10),
    );
    let digits17 = _mm256_blendv_epi8(
        _mm256_blendv_epi8(times_100, times_10, sixteen_digits_or_more),
        significand,
        seventeen_digits,
    );
    // Subtracting all-ones lanes adds one per extra digit.
    let first_power = _mm256_sub_epi64(
        _mm256_sub_epi64(
            _mm256_add_epi64(exponent, splat(14)),
            sixteen_digits_or_more,
        ),
        seventeen_digits,
    );

    // digits17 / 10^8 by the multiplier that divides every u64 exactly.
    let (quotient, _) = multiply_wide(digits17, splat(0xABCC_7711_8461_CEFD_u64 as i64));
    let high = _mm256_srli_epi64::<26>(quotient);
    // high < 10^9 < 2^32, so the 32-bit multiplies are exact.
    let low = _mm256_sub_epi64(digits17, _mm256_mul_epu32(high, splat(TEN_POW_8)));
    let first = _mm256_srli_epi64::<56>(_mm256_mul_epu32(high, splat(720_575_941)));
    let middle = _mm256_sub_epi64(high, _mm256_mul_epu32(first, splat(TEN_POW_8)));
    let middle_text = eight_digits(middle);
    let low_text = eight_digits(low);
    let middle_zeros = zero_digit_masks(middle_text);
    let low_zeros = zero_digit_masks(low_text);

    // Each lane's 16 digits after the first, as one 16-byte register.
    let even = _mm256_unpacklo_epi64(middle_text, low_text);
    let odd = _mm256_unpackhi_epi64(middle_text, low_text);
    let lanes: [__m128i; 4] = [
        _mm256_castsi256_si128(even),
        _mm256_castsi256_si128(odd),
        _mm256_extracti128_si256::<1>(even),
        _mm256_extracti128_si256::<1>(odd),
    ];
    let mut firsts = [0u64; 4];
    let mut powers = [0i64; 4];
    // SAFETY: both arrays are 32 bytes.
    unsafe {
        _mm256_storeu_si256(firsts.as_mut_ptr().cast(), first);
        _mm256_storeu_si256(powers.as_mut_ptr().cast(), first_power);
    }
    // SAFETY: EXTRAS is 16 bytes.
    let extras_base = unsafe { _mm_loadu_si128(EXTRAS.as_ptr().cast()) };

    let mut position = 0;
    for (lane, digits) in lanes.into_iter().enumerate() {
        let low_mask = (low_zeros >> (8 * lane)) as u8;
        let middle_mask = (middle_zeros >> (8 * lane)) as u8;
        // Trailing zero digits are the top bytes of each group that equal '0'.
        let significant = if low_mask == 0xFF {
            9 - middle_mask.leading_ones() as usize
        } else {
            17 - low_mask.leading_ones() as usize
        };
        let negative = values[lane].is_sign_negative();
        let shape = item_shape(powers[lane] as i32, significant, negative);
        let first_digit = if values[lane] == 0.0 {
            b'0'
        } else {
            b'0' + firsts[lane] as u8
        };
        let extras = _mm_insert_epi8::<0>(extras_base, i32::from(first_digit));
        let template = &TEMPLATES[shape.row];
        // SAFETY: each template half is 16 bytes. The item starts at most 25 bytes
        // per earlier item into the group's room and takes 32 bytes, which the
        // caller's room covers. The next item overwrites the bytes past its end.
        unsafe {
            let item = at.add(position);
            for offset in [0, 16] {
                let digit_index = _mm_loadu_si128(template.digits.as_ptr().add(offset).cast());
                let extra_index = _mm_loadu_si128(template.extras.as_ptr().add(offset).cast());
                let half = _mm_or_si128(
                    _mm_shuffle_epi8(digits, digit_index),
                    _mm_shuffle_epi8(extras, extra_index),
                );
                _mm_storeu_si128(item.add(offset).cast(), half);
            }
            if shape.mantissa_len > 0 {
                let (suffix, len) = exponent_suffix(powers[lane] as i32);
                // The suffix ends where the item ends.
                ptr::copy_nonoverlapping(
                    suffix.as_ptr(),
                    item.add(1 + usize::from(negative) + shape.mantissa_len),
                    len,
                );
            }
        }
        position += shape.len;
    }
    Some(position)
}

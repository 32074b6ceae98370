//! Python's repr of eight doubles at once with AVX-512.
//!
//! The shortest digits come from Schubfach (Raffaello Giulietti, "The Schubfach way
//! to render doubles", 2020), run on eight lanes: one table lookup of a 128-bit
//! power of ten per lane, and its products with the scaled significand built from
//! 52-bit limbs with the IFMA multiply-adds. The digits are then laid out in
//! Python's notation by byte permutations from a table of templates, one per
//! notation, sign and lane, so no lane needs a branch or a scalar loop.
//!
//! Groups with a subnormal, NaN or infinity are left to the scalar path.

use std::arch::x86_64::{
    __m512i, _mm256_loadu_si256, _mm256_storeu_si256, _mm512_add_epi64, _mm512_and_si512,
    _mm512_castsi128_si512, _mm512_castsi256_si512, _mm512_castsi512_si256,
    _mm512_cmpeq_epi64_mask, _mm512_cmpge_epi64_mask, _mm512_cmpge_epu64_mask,
    _mm512_cmpgt_epi64_mask, _mm512_cmpgt_epu64_mask, _mm512_cmple_epi64_mask,
    _mm512_cmple_epu64_mask, _mm512_cmplt_epi64_mask, _mm512_cmplt_epu64_mask,
    _mm512_cvtepi64_epi8, _mm512_cvtepu64_pd, _mm512_cvttpd_epu64, _mm512_extracti64x4_epi64,
    _mm512_i64gather_epi64, _mm512_inserti64x4, _mm512_loadu_si512, _mm512_lzcnt_epi64,
    _mm512_madd52hi_epu64, _mm512_madd52lo_epu64, _mm512_mask_add_epi64, _mm512_mask_blend_epi64,
    _mm512_mask_blend_epi8, _mm512_mask_mov_epi64, _mm512_mask_sub_epi64, _mm512_max_epi64,
    _mm512_movepi8_mask, _mm512_mul_epu32, _mm512_mul_pd, _mm512_mullo_epi32, _mm512_mullo_epi64,
    _mm512_or_si512, _mm512_permutex2var_epi8, _mm512_permutexvar_epi8, _mm512_set1_epi64,
    _mm512_set1_pd, _mm512_setzero_si512, _mm512_slli_epi64, _mm512_sllv_epi64, _mm512_srai_epi64,
    _mm512_srli_epi64, _mm512_sub_epi64, _mm512_test_epi64_mask, _mm512_xor_si512,
    _mm_cvtsi128_si64,
};
use std::ptr;

use super::layout::{
    item_layout, ItemByte, ITEM_STORE, NOTATIONS, ROWS, SCIENTIFIC, TEN_POW_14, TEN_POW_15,
    TEN_POW_16, TEN_POW_17, TEN_POW_8,
};
use super::pow10::{POW10_FIRST, POW10_HIGH, POW10_LOW};
use super::{exponent_suffix, MAX_ITEM_BYTES};
use crate::encode::avx512_eight_digits as eight_digits;

/// Returns whether this CPU has every AVX-512 part the path uses. The standard
/// library caches the result of each check.
#[inline(always)]
pub(super) fn is_available() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512cd")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512ifma")
        && std::is_x86_feature_detected!("avx512vbmi")
}

/// Bytes that one group may write past the end of its last item: each item is
/// written with one `ITEM_STORE`-byte store.
pub(super) const GROUP_SLACK: usize = ITEM_STORE - MAX_ITEM_BYTES;

const MASK_52: i64 = (1 << 52) - 1;

/// Positions in the register of extra bytes that the templates pick with their top
/// bit set. Bytes 0 to 7 hold the first digit of lanes 0 to 7.
const EXTRA_POINT: u8 = 8;
const EXTRA_ZERO: u8 = 9;
const EXTRA_MINUS: u8 = 10;
const EXTRA_COMMA: u8 = 11;
const FROM_EXTRAS: u8 = 0x80;

/// The extra bytes, in the order of the `EXTRA_` positions. The first digits are
/// filled in per group.
const EXTRAS: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, b'.', b'0', b'-', b',', 0, 0, 0, 0];

/// Builds the template of `row` for lane `lane`: byte `i` of the item picks the byte
/// at index `i` of the sources, as `item_layout` lays it out.
///
/// The first digit and the other characters sit in the extras. Digits 1 to 8 are the
/// bytes of lane `lane` of the first register of the pair that
/// `_mm512_permutex2var_epi8` reads, and digits 9 to 16 those of the second register,
/// 64 bytes on.
const fn template(lane: usize, row: usize) -> [u8; ITEM_STORE] {
    let layout = item_layout(row);
    let mut out = [0u8; ITEM_STORE];
    let mut at = 0;
    while at < ITEM_STORE {
        out[at] = match layout[at] {
            ItemByte::Digit(0) => FROM_EXTRAS | lane as u8,
            ItemByte::Digit(digit) if digit <= 8 => (8 * lane + digit - 1) as u8,
            ItemByte::Digit(digit) => (64 + 8 * lane + digit - 9) as u8,
            ItemByte::Point => FROM_EXTRAS | EXTRA_POINT,
            ItemByte::Zero => FROM_EXTRAS | EXTRA_ZERO,
            ItemByte::Minus => FROM_EXTRAS | EXTRA_MINUS,
            ItemByte::Comma => FROM_EXTRAS | EXTRA_COMMA,
        };
        at += 1;
    }
    out
}

/// Templates for every lane and row, 10.5 KiB.
static TEMPLATES: [[[u8; ITEM_STORE]; ROWS]; 8] = {
    let mut table = [[[0u8; ITEM_STORE]; ROWS]; 8];
    let mut lane = 0;
    while lane < 8 {
        let mut row = 0;
        while row < ROWS {
            table[lane][row] = template(lane, row);
            row += 1;
        }
        lane += 1;
    }
    table
};

#[target_feature(enable = "avx512f")]
#[inline]
fn splat(value: i64) -> __m512i {
    _mm512_set1_epi64(value)
}

/// Returns `floor((x * factor - offset) / 2^SHIFT)` for lanes holding small signed
/// `x`, where `x * factor` fits in an i32, as the Schubfach logarithm estimates need.
#[target_feature(enable = "avx512f")]
#[inline]
fn scaled_floor<const SHIFT: u32>(x: __m512i, factor: i64, offset: i64) -> __m512i {
    // The 32-bit multiply is exact in the low half of each lane, which is then sign
    // extended before the arithmetic shift.
    let product = _mm512_mullo_epi32(x, splat(factor));
    let widened = _mm512_srai_epi64::<32>(_mm512_slli_epi64::<32>(product));
    _mm512_srai_epi64::<SHIFT>(_mm512_sub_epi64(widened, splat(offset)))
}

/// Returns Schubfach's `RoundToOdd(g, cp)`: bits 128 to 191 of the product of the
/// 128-bit `g`, given as 52-bit limbs `g0`, `g1`, `g2`, and `cp`, below 2^60, with the
/// lowest bit set if bits 64 to 127 exceed one.
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn round_to_odd(g0: __m512i, g1: __m512i, g2: __m512i, cp: __m512i) -> __m512i {
    let a0 = _mm512_and_si512(cp, splat(MASK_52));
    let a1 = _mm512_srli_epi64::<52>(cp);
    let zero = _mm512_setzero_si512();
    // Column n sums the 52-bit halves of the limb products at 2^(52n). Column 0 is
    // the low half of a0 * g0 alone, so it carries nothing and is skipped. The
    // product a1 * g2 is below 2^52, so it has no high half.
    let col1 = _mm512_madd52hi_epu64(zero, a0, g0);
    let col1 = _mm512_madd52lo_epu64(col1, a0, g1);
    let col1 = _mm512_madd52lo_epu64(col1, a1, g0);
    let col2 = _mm512_madd52hi_epu64(zero, a0, g1);
    let col2 = _mm512_madd52hi_epu64(col2, a1, g0);
    let col2 = _mm512_madd52lo_epu64(col2, a0, g2);
    let col2 = _mm512_madd52lo_epu64(col2, a1, g1);
    let col3 = _mm512_madd52hi_epu64(zero, a0, g2);
    let col3 = _mm512_madd52hi_epu64(col3, a1, g1);
    let col3 = _mm512_madd52lo_epu64(col3, a1, g2);

    let col2 = _mm512_add_epi64(col2, _mm512_srli_epi64::<52>(col1));
    let col1 = _mm512_and_si512(col1, splat(MASK_52));
    let col3 = _mm512_add_epi64(col3, _mm512_srli_epi64::<52>(col2));
    let col2 = _mm512_and_si512(col2, splat(MASK_52));

    let middle = _mm512_or_si512(_mm512_srli_epi64::<12>(col1), _mm512_slli_epi64::<40>(col2));
    let high = _mm512_or_si512(_mm512_srli_epi64::<24>(col2), _mm512_slli_epi64::<28>(col3));
    let sticky = _mm512_cmpgt_epu64_mask(middle, splat(1));
    _mm512_mask_mov_epi64(high, sticky, _mm512_or_si512(high, splat(1)))
}

/// Returns `x / 10` for lanes below 2^57.
#[target_feature(enable = "avx512f,avx512dq")]
#[inline]
fn divide_by_ten(x: __m512i) -> __m512i {
    // The double estimate is within 3 of the quotient (x loses at most 8 when
    // converted, and the product rounds by at most 1), so the remainder against it
    // lies in -30..40. One exact floor division of the remainder, offset to be
    // positive, corrects the estimate.
    let estimate = _mm512_cvttpd_epu64(_mm512_mul_pd(_mm512_cvtepu64_pd(x), _mm512_set1_pd(0.1)));
    let remainder = _mm512_sub_epi64(x, _mm512_mullo_epi64(estimate, splat(10)));
    let offset = _mm512_add_epi64(remainder, splat(40));
    let correction = _mm512_sub_epi64(
        _mm512_srli_epi64::<11>(_mm512_mullo_epi64(offset, splat(205))),
        splat(4),
    );
    _mm512_add_epi64(estimate, correction)
}

/// Decimal significands `d` and the power of ten of their last digit `e` of eight
/// normal doubles, `d * 10^e` being each one's shortest round-trip form that lies
/// closest to it, as Python's repr picks.
struct Shortest {
    significand: __m512i,
    exponent: __m512i,
}

/// Runs Schubfach on eight lanes of bits of positive normal doubles.
#[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
#[inline]
fn shortest(bits: __m512i) -> Shortest {
    let fraction = _mm512_and_si512(bits, splat((1 << 52) - 1));
    let biased = _mm512_and_si512(_mm512_srli_epi64::<52>(bits), splat(0x7FF));
    let c = _mm512_or_si512(fraction, splat(1 << 52));
    let q = _mm512_sub_epi64(biased, splat(1075));
    // The power of two just below 2^q is half as far as the one above when the
    // fraction is zero, so the rounding interval is lopsided.
    let closer = _mm512_cmpeq_epi64_mask(fraction, _mm512_setzero_si512())
        & _mm512_cmpgt_epi64_mask(biased, splat(1));

    // k = floor(log10(2^q)), or floor(log10(3/4 * 2^q)) for a lopsided interval.
    let k_even = scaled_floor::<20>(q, 315_653, 0);
    let k_closer = scaled_floor::<20>(q, 315_653, 131_237);
    let k = _mm512_mask_blend_epi64(closer, k_even, k_closer);
    let minus_k = _mm512_sub_epi64(_mm512_setzero_si512(), k);
    // h = q + floor(log2(10^-k)) + 1, from 1 to 4.
    let h = _mm512_add_epi64(
        _mm512_add_epi64(q, scaled_floor::<19>(minus_k, 1_741_647, 0)),
        splat(1),
    );

    let index = _mm512_sub_epi64(minus_k, splat(i64::from(POW10_FIRST)));
    // SAFETY: -k lies in POW10_FIRST..=324 for every normal double, so each index is
    // within both tables.
    let (high, low) = unsafe {
        (
            _mm512_i64gather_epi64::<8>(index, POW10_HIGH.as_ptr().cast()),
            _mm512_i64gather_epi64::<8>(index, POW10_LOW.as_ptr().cast()),
        )
    };
    let g0 = _mm512_and_si512(low, splat(MASK_52));
    let g1 = _mm512_and_si512(
        _mm512_or_si512(_mm512_srli_epi64::<52>(low), _mm512_slli_epi64::<12>(high)),
        splat(MASK_52),
    );
    let g2 = _mm512_srli_epi64::<40>(high);

    let cb = _mm512_slli_epi64::<2>(c);
    let cb_lower = _mm512_sub_epi64(cb, splat(2));
    let cb_lower = _mm512_mask_add_epi64(cb_lower, closer, cb_lower, splat(1));
    let cb_upper = _mm512_add_epi64(cb, splat(2));
    let vb = round_to_odd(g0, g1, g2, _mm512_sllv_epi64(cb, h));
    let vb_lower = round_to_odd(g0, g1, g2, _mm512_sllv_epi64(cb_lower, h));
    let vb_upper = round_to_odd(g0, g1, g2, _mm512_sllv_epi64(cb_upper, h));

    // The interval's ends count as inside only for an even significand, whose
    // neighbours round to it when a tie is broken to even.
    let odd = _mm512_and_si512(c, splat(1));
    let lower = _mm512_add_epi64(vb_lower, odd);
    let upper = _mm512_sub_epi64(vb_upper, odd);

    let s = _mm512_srli_epi64::<2>(vb);
    // One digit fewer: exactly one of sp * 10^(k+1) and (sp + 1) * 10^(k+1) may lie
    // inside, and then it is the result.
    let sp = divide_by_ten(s);
    let sp40 = _mm512_mullo_epi64(sp, splat(40));
    let up_inside = _mm512_cmple_epu64_mask(lower, sp40);
    let wp_inside = _mm512_cmple_epu64_mask(_mm512_add_epi64(sp40, splat(40)), upper);
    let shorter = up_inside ^ wp_inside;

    // Otherwise s or s + 1: the one inside, or the nearer, with ties to even.
    let s4 = _mm512_slli_epi64::<2>(s);
    let u_inside = _mm512_cmple_epu64_mask(lower, s4);
    let w_inside = _mm512_cmple_epu64_mask(_mm512_add_epi64(s4, splat(4)), upper);
    let middle = _mm512_add_epi64(s4, splat(2));
    let round_up = _mm512_cmpgt_epu64_mask(vb, middle)
        | (_mm512_cmpeq_epi64_mask(vb, middle) & _mm512_test_epi64_mask(s, splat(1)));
    let one_inside = u_inside ^ w_inside;
    let up = (one_inside & w_inside) | (!one_inside & round_up);

    let long = _mm512_mask_add_epi64(s, up, s, splat(1));
    let short = _mm512_mask_add_epi64(sp, wp_inside, sp, splat(1));
    Shortest {
        significand: _mm512_mask_blend_epi64(shorter, long, short),
        exponent: _mm512_mask_add_epi64(k, shorter, k, splat(1)),
    }
}

/// Writes `,repr` for each of the eight `values` at `at` and returns the bytes
/// written, or returns `None`, having written nothing, if a value is subnormal, NaN
/// or an infinity.
///
/// # Safety
/// `8 * MAX_ITEM_BYTES + GROUP_SLACK` bytes from `at` must be writable, and the CPU
/// must have the parts `is_available` checks.
#[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512ifma,avx512vbmi")]
pub(super) unsafe fn write_group(values: &[f64; 8], at: *mut u8) -> Option<usize> {
    // SAFETY: the array is 64 bytes.
    let bits = unsafe { _mm512_loadu_si512(values.as_ptr().cast()) };
    let magnitude = _mm512_and_si512(bits, splat(i64::MAX));
    let biased = _mm512_srli_epi64::<52>(magnitude);
    let zero = _mm512_cmpeq_epi64_mask(magnitude, _mm512_setzero_si512());
    let normal = _mm512_cmpgt_epi64_mask(biased, _mm512_setzero_si512())
        & _mm512_cmplt_epi64_mask(biased, splat(0x7FF));
    if (normal | zero) != 0xFF {
        return None;
    }
    // Zeros are formatted as 1.0, whose first digit then becomes a 0.
    let one = splat(1.0f64.to_bits() as i64);
    let Shortest {
        significand,
        exponent,
    } = shortest(_mm512_mask_mov_epi64(magnitude, zero, one));

    // Normal doubles have 15 to 17 digits. Scaling to 17 puts the first digit at
    // 10^16 and leaves zeros after the significant ones.
    let sixteen_digits_or_more = _mm512_cmpge_epu64_mask(significand, splat(TEN_POW_15));
    let seventeen_digits = _mm512_cmpge_epu64_mask(significand, splat(TEN_POW_16));
    let in_range = _mm512_cmpge_epu64_mask(significand, splat(TEN_POW_14))
        & _mm512_cmplt_epu64_mask(significand, splat(TEN_POW_17));
    if in_range != 0xFF {
        // NOTE: the range above holds for every normal double, so this never happens.
        // The check keeps a mistake there from writing wrong digits.
        return None;
    }
    let scale = _mm512_mask_mov_epi64(
        _mm512_mask_mov_epi64(splat(100), sixteen_digits_or_more, splat(10)),
        seventeen_digits,
        splat(1),
    );
    let digits17 = _mm512_mullo_epi64(significand, scale);
    let last_to_first = _mm512_add_epi64(exponent, splat(14));
    let last_to_first = _mm512_mask_add_epi64(
        last_to_first,
        sixteen_digits_or_more,
        last_to_first,
        splat(1),
    );
    let first_power =
        _mm512_mask_add_epi64(last_to_first, seventeen_digits, last_to_first, splat(1));

    // 17 digits: a first one, then two groups of eight.
    let estimate = _mm512_cvttpd_epu64(_mm512_mul_pd(
        _mm512_cvtepu64_pd(digits17),
        _mm512_set1_pd(1e-8),
    ));
    let low = _mm512_sub_epi64(digits17, _mm512_mullo_epi64(estimate, splat(TEN_POW_8)));
    let under = _mm512_cmplt_epi64_mask(low, _mm512_setzero_si512());
    let high = _mm512_mask_sub_epi64(estimate, under, estimate, splat(1));
    let low = _mm512_mask_add_epi64(low, under, low, splat(TEN_POW_8));
    let over = _mm512_cmpge_epi64_mask(low, splat(TEN_POW_8));
    let high = _mm512_mask_add_epi64(high, over, high, splat(1));
    let low = _mm512_mask_sub_epi64(low, over, low, splat(TEN_POW_8));
    // high < 10^9, so this multiply-shift divides it by 10^8 exactly.
    let first = _mm512_srli_epi64::<56>(_mm512_mul_epu32(high, splat(720_575_941)));
    let middle = _mm512_sub_epi64(high, _mm512_mul_epu32(first, splat(TEN_POW_8)));
    let middle_text = eight_digits(middle);
    let low_text = eight_digits(low);

    // Trailing zero digits are the top bytes of each group that equal '0'.
    let ascii_zeros = splat(0x3030_3030_3030_3030);
    let low_zeros =
        _mm512_srli_epi64::<3>(_mm512_lzcnt_epi64(_mm512_xor_si512(low_text, ascii_zeros)));
    let middle_zeros = _mm512_srli_epi64::<3>(_mm512_lzcnt_epi64(_mm512_xor_si512(
        middle_text,
        ascii_zeros,
    )));
    let low_is_zero = _mm512_cmpeq_epi64_mask(low, _mm512_setzero_si512());
    let significant = _mm512_mask_blend_epi64(
        low_is_zero,
        _mm512_sub_epi64(splat(17), low_zeros),
        _mm512_sub_epi64(splat(9), middle_zeros),
    );

    let negative = _mm512_srli_epi64::<63>(bits);
    let fixed_positive = _mm512_cmpge_epi64_mask(first_power, _mm512_setzero_si512())
        & _mm512_cmple_epi64_mask(first_power, splat(15));
    let fixed_negative = _mm512_cmpge_epi64_mask(first_power, splat(-4))
        & _mm512_cmplt_epi64_mask(first_power, _mm512_setzero_si512());
    let scientific = !(fixed_positive | fixed_negative);

    // Body lengths without the comma and the sign. Fixed notation at 10^p >= 0 shows
    // at least p + 1 digits, the point and one more digit.
    let positive_len = _mm512_add_epi64(
        _mm512_max_epi64(significant, _mm512_add_epi64(first_power, splat(2))),
        splat(1),
    );
    let negative_len = _mm512_sub_epi64(_mm512_add_epi64(significant, splat(1)), first_power);
    let many = _mm512_cmpgt_epi64_mask(significant, splat(1));
    let mantissa_len = _mm512_mask_add_epi64(significant, many, significant, splat(1));
    let exponent_len = _mm512_mask_add_epi64(
        splat(4),
        _mm512_cmpge_epi64_mask(first_power, splat(100))
            | _mm512_cmple_epi64_mask(first_power, splat(-100)),
        splat(4),
        splat(1),
    );
    let body_len = _mm512_mask_blend_epi64(
        fixed_positive,
        _mm512_mask_blend_epi64(
            fixed_negative,
            _mm512_add_epi64(mantissa_len, exponent_len),
            negative_len,
        ),
        positive_len,
    );
    let item_len = _mm512_add_epi64(_mm512_add_epi64(body_len, negative), splat(1));
    let notation = _mm512_mask_mov_epi64(
        splat(SCIENTIFIC as i64),
        fixed_positive | fixed_negative,
        _mm512_add_epi64(first_power, splat(4)),
    );
    let row = _mm512_add_epi64(
        notation,
        _mm512_mullo_epi64(negative, splat(NOTATIONS as i64)),
    );

    let rows = _mm_cvtsi128_si64(_mm512_cvtepi64_epi8(row)) as u64;
    let sizes = _mm_cvtsi128_si64(_mm512_cvtepi64_epi8(item_len)) as u64;
    // Each size is at most 25 and all eight at most 200, so multiplying by 0x0101...
    // sums them into every higher byte without overflow: byte i ends item i.
    let ends = sizes.wrapping_mul(0x0101_0101_0101_0101);
    let starts = ends << 8;

    let first_ascii = _mm512_mask_mov_epi64(
        _mm512_add_epi64(first, splat(i64::from(b'0'))),
        zero,
        splat(i64::from(b'0')),
    );
    // SAFETY: EXTRAS is 16 bytes.
    let extras_base =
        unsafe { ptr::read_unaligned(EXTRAS.as_ptr().cast::<std::arch::x86_64::__m128i>()) };
    let extras = _mm512_mask_blend_epi8(
        0xFF,
        _mm512_castsi128_si512(extras_base),
        _mm512_castsi128_si512(_mm512_cvtepi64_epi8(first_ascii)),
    );

    for pair in 0..4 {
        let (left, right) = (2 * pair, 2 * pair + 1);
        let row_of = |lane: usize| ((rows >> (8 * lane)) & 0xFF) as usize;
        let start_of = |lane: usize| ((starts >> (8 * lane)) & 0xFF) as usize;
        // SAFETY: each row is below ROWS, and each template is 32 bytes.
        let index = unsafe {
            _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(
                    TEMPLATES[left][row_of(left)].as_ptr().cast(),
                )),
                _mm256_loadu_si256(TEMPLATES[right][row_of(right)].as_ptr().cast()),
            )
        };
        let digits = _mm512_permutex2var_epi8(middle_text, index, low_text);
        let picked = _mm512_permutexvar_epi8(index, extras);
        let item_pair = _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), digits, picked);
        // SAFETY: item i starts at most 25 * i bytes into the group's room and takes 32
        // bytes, which the caller's room covers. Later items overwrite the bytes past
        // the end of earlier ones.
        unsafe {
            _mm256_storeu_si256(
                at.add(start_of(left)).cast(),
                _mm512_castsi512_si256(item_pair),
            );
            _mm256_storeu_si256(
                at.add(start_of(right)).cast(),
                _mm512_extracti64x4_epi64::<1>(item_pair),
            );
        }
    }

    if scientific != 0 {
        let mut powers = [0i64; 8];
        let mut mantissas = [0i64; 8];
        // SAFETY: both arrays are 64 bytes.
        unsafe {
            std::arch::x86_64::_mm512_storeu_si512(powers.as_mut_ptr().cast(), first_power);
            std::arch::x86_64::_mm512_storeu_si512(mantissas.as_mut_ptr().cast(), mantissa_len);
        }
        for lane in 0..8 {
            if scientific & (1 << lane) == 0 {
                continue;
            }
            let sign = (values[lane].to_bits() >> 63) as usize;
            let start = ((starts >> (8 * lane)) & 0xFF) as usize;
            let (suffix, len) = exponent_suffix(powers[lane] as i32);
            // SAFETY: the suffix ends where the item ends, inside the room.
            unsafe {
                ptr::copy_nonoverlapping(
                    suffix.as_ptr(),
                    at.add(start + 1 + sign + mantissas[lane] as usize),
                    len,
                );
            }
        }
    }
    Some((ends >> 56) as usize)
}

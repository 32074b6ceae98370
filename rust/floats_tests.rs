use crate::encode::ByteOrder;
use crate::floats::{
    avx2_group, encode_buffer, encode_f32s, encode_f64s, encode_f64s_on, rewrite_text, simd_group,
    write_repr, FloatError, FloatLayout, FloatPath, FloatType, FloatWriter, MAX_REPR_LEN,
};
use crate::floats_reference::{
    push_python_layout, python_array, python_repr, short_exact_expansion, split_scientific,
    std_shortest_digits,
};

/// Divides the sizes of the random sweeps in unoptimized builds, where the encoder
/// runs about ten times slower, so that a plain `cargo test` stays quick.
const DEBUG_DIVISOR: usize = if cfg!(debug_assertions) { 16 } else { 1 };

/// Returns the encoder's repr of one value.
fn encoder_repr(value: f64) -> String {
    let mut out = [0u8; MAX_REPR_LEN];
    let len = write_repr(value, &mut out).expect("the value is finite");
    String::from_utf8(out[..len].to_vec()).unwrap()
}

/// Checks that `encode_f64s` writes `values` as Python does, and on a mismatch names
/// the first value that differs. Returns how many values were checked.
fn check_against_reference(values: &[f64], case: &str) -> usize {
    let encoded = encode_f64s(values).unwrap();
    let expected = python_array(values);
    // The first call takes the fastest path for all but a few values, so every other
    // path this CPU has is checked on its own too.
    let others_match = [FloatPath::Avx2, FloatPath::Scalar]
        .into_iter()
        .all(|path| {
            encode_f64s_on(path, values).is_none_or(|result| result.unwrap() == expected.as_bytes())
        });
    if encoded != expected.as_bytes() || !others_match {
        for &value in values {
            assert_eq!(
                encoder_repr(value),
                python_repr(value),
                "{case}: value with bits {:#018x}",
                value.to_bits()
            );
            // Nine copies fill one group of each vector path after the first item.
            let copies = [value; 9];
            for path in [FloatPath::Avx512, FloatPath::Avx2] {
                if let Some(result) = encode_f64s_on(path, &copies) {
                    assert_eq!(
                        String::from_utf8(result.unwrap()).unwrap(),
                        python_array(&copies),
                        "{case}: {path:?} group of the value with bits {:#018x}",
                        value.to_bits()
                    );
                }
            }
        }
        panic!("{case}: the arrays differ although every value matches");
    }
    values.len()
}

/// Pseudo-random 64-bit numbers, the same on every run (xorshift64).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Returns values with their reprs as CPython 3.11.7 printed them with `repr(x)`. The
/// f32 cases are as `repr(float(numpy.float32(x)))` printed them with numpy 2.4.6.
// The tie cases spell out their exact values, which are longer than their reprs.
#[allow(clippy::excessive_precision)]
fn cpython_table() -> Vec<(f64, &'static str)> {
    vec![
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (-1.0, "-1.0"),
        (100.0, "100.0"),
        (0.1, "0.1"),
        (0.5, "0.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.0 / 3.0, "0.3333333333333333"),
        (2.0 / 3.0, "0.6666666666666666"),
        (123.456, "123.456"),
        (2.675, "2.675"),
        (std::f64::consts::PI, "3.141592653589793"),
        (-std::f64::consts::TAU, "-6.283185307179586"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e+16"),
        (1e17, "1e+17"),
        (1e22, "1e+22"),
        (1e23, "1e+23"),
        (1e16f64.next_down(), "9999999999999998.0"),
        (1e16f64.next_up(), "1.0000000000000002e+16"),
        (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
        (2f64.powi(53), "9007199254740992.0"),
        (2f64.powi(53) + 2.0, "9007199254740994.0"),
        (2f64.powi(63), "9.223372036854776e+18"),
        (2f64.powi(64), "1.8446744073709552e+19"),
        (0.0001, "0.0001"),
        (1e-4f64.next_down(), "9.999999999999999e-05"),
        (0.00012345, "0.00012345"),
        (1e-5, "1e-05"),
        (1.2345e-5, "1.2345e-05"),
        (1e-7, "1e-07"),
        (1e-10, "1e-10"),
        (-1.5e-300, "-1.5e-300"),
        (1.5e300, "1.5e+300"),
        (f64::from_bits(1), "5e-324"),
        (f64::from_bits(2), "1e-323"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (f64::MIN_POSITIVE.next_down(), "2.225073858507201e-308"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::MIN, "-1.7976931348623157e+308"),
        (f64::from(0.1f32), "0.10000000149011612"),
        (f64::from(1.0f32 / 3.0), "0.3333333432674408"),
        (f64::from(f32::MAX), "3.4028234663852886e+38"),
        (f64::from(f32::from_bits(1)), "1.401298464324817e-45"),
        (f64::from(f32::MIN_POSITIVE), "1.1754943508222875e-38"),
        (f64::from(16_777_216f32), "16777216.0"),
        (f64::from(-2.5e-6f32), "-2.499999936844688e-06"),
        // Exactly halfway between two shortest candidates: the even last digit wins.
        (1e15 + 0.25, "1000000000000000.2"),
        (2f64.powi(-25), "2.9802322387695312e-08"),
        (-103.21731567382812, "-103.21731567382812"),
        (696.957_214_355_468_75, "696.9572143554688"),
        (897.355_407_714_843_75, "897.3554077148438"),
    ]
}

#[test]
fn short_exact_expansion_matches_full_expansion() {
    let mut random = XorShift(0x00E7_AC75_0000_0001);
    let mut values: Vec<f64> = (-1080..1030).map(|power| 2f64.powi(power)).collect();
    values.extend((0..20_000).map(|_| f64::from(f32::from_bits(random.next() as u32))));
    values.extend((0..20_000).map(|_| f64::from_bits(random.next())));
    values.extend([
        1e15 + 0.25,
        9_007_199_254_740_993.0,
        1e19,
        1e19f64.next_down(),
    ]);
    values.retain(|value| value.is_finite() && *value != 0.0);
    let mut short = 0;
    for value in values {
        let (digits, exponent) = split_scientific(&format!("{value:.800e}"));
        let digits = digits.trim_end_matches('0').to_string();
        match short_exact_expansion(value) {
            Some(expansion) => {
                assert_eq!(expansion, (digits, exponent), "{value:e}");
                short += 1;
            }
            None => assert!(digits.len() > 19, "{value:e} has {} digits", digits.len()),
        }
    }
    assert!(short > 1000, "{short}");
}

#[test]
fn reference_matches_cpython_table() {
    for (value, expected) in cpython_table() {
        assert_eq!(
            python_repr(value),
            expected,
            "bits {:#018x}",
            value.to_bits()
        );
    }
}

#[test]
fn encoder_matches_cpython_table() {
    let table = cpython_table();
    for &(value, expected) in &table {
        assert_eq!(
            encoder_repr(value),
            expected,
            "bits {:#018x}",
            value.to_bits()
        );
    }
    let values: Vec<f64> = table.iter().map(|&(value, _)| value).collect();
    let texts: Vec<&str> = table.iter().map(|&(_, text)| text).collect();
    let expected = format!("[{}]", texts.join(","));
    assert_eq!(
        String::from_utf8(encode_f64s(&values).unwrap()).unwrap(),
        expected
    );
}

/// Returns `f64(10^power)`, the double nearest to it, for every power from 10^-330
/// (which rounds to zero) to 10^308.
fn powers_of_ten() -> impl Iterator<Item = (i32, f64)> {
    (-330..=308).map(|power| (power, format!("1e{power}").parse::<f64>().unwrap()))
}

#[test]
fn every_power_of_ten_and_neighbours() {
    let mut values = Vec::new();
    for (_, power) in powers_of_ten() {
        let mut below = power;
        let mut above = power;
        values.push(power);
        for _ in 0..4 {
            below = below.next_down();
            above = above.next_up();
            values.extend([below, above]);
        }
        // Other short digit strings at the same exponent, and their neighbours.
        for factor in [2.0, 5.0, 9.5, 9.999_999_999_999_998] {
            let scaled = power * factor;
            if scaled.is_finite() {
                values.extend([scaled.next_down(), scaled, scaled.next_up()]);
            }
        }
    }
    let negated: Vec<f64> = values.iter().map(|value| -value).collect();
    values.extend(negated);
    values.retain(|value| value.is_finite());
    let checked = check_against_reference(&values, "powers of ten");
    assert!(checked > 20_000, "{checked}");
}

#[test]
fn first_digit_exponent_switches_at_nearest_power() {
    // The encoder picks the notation by comparing magnitudes with f64(10^k): the first
    // shortest digit is at 10^k or above exactly from that double up.
    let exponent = |value: f64| -> i32 {
        let text = format!("{value:e}");
        text.split_once('e').unwrap().1.parse().unwrap()
    };
    for (power, value) in powers_of_ten() {
        if value == 0.0 || power < -323 {
            continue;
        }
        assert_eq!(exponent(value), power, "10^{power}");
        let below = value.next_down();
        if below > 0.0 {
            assert_eq!(exponent(below), power - 1, "below 10^{power}");
        }
    }
}

#[test]
fn notation_switch_points() {
    let expected = [
        (1e-5, "1e-05"),
        (1e-4, "0.0001"),
        (1e16, "1e+16"),
        (9_999_999_999_999_998.0, "9999999999999998.0"),
        (1e15, "1000000000000000.0"),
        (-1e-5, "-1e-05"),
        (-1e16, "-1e+16"),
    ];
    for (value, text) in expected {
        assert_eq!(encoder_repr(value), text);
    }
    // A thousand doubles on either side of each switch point, and of 1e-5 where the
    // crate itself switches.
    let mut values = Vec::new();
    for point in [1e-5f64, 1e-4, 1e15, 1e16] {
        let (mut below, mut above) = (point, point);
        for _ in 0..1000 {
            below = below.next_down();
            above = above.next_up();
            values.extend([below, above, -below, -above]);
        }
    }
    check_against_reference(&values, "switch points");
}

#[test]
fn zeros_extremes_and_longest_reprs() {
    let values = [
        0.0,
        -0.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::EPSILON,
        f64::from_bits(1),
        -f64::from_bits(1),
    ];
    check_against_reference(&values, "extremes");
    assert_eq!(encoder_repr(-f64::MIN_POSITIVE), "-2.2250738585072014e-308");
    assert_eq!(encoder_repr(-f64::MIN_POSITIVE).len(), MAX_REPR_LEN);
}

#[test]
fn subnormals() {
    let mut values: Vec<f64> = (1..=100_000u64).map(f64::from_bits).collect();
    let largest = 0x000F_FFFF_FFFF_FFFFu64;
    values.extend((largest - 100_000..=largest).map(f64::from_bits));
    let mut random = XorShift(0x0005_EED5_0B0A_1111);
    values.extend((0..1_000_000 / DEBUG_DIVISOR).map(|_| f64::from_bits(random.next() & largest)));
    // Every power of two among them.
    values.extend((0..52).map(|shift| f64::from_bits(1 << shift)));
    let negated: Vec<f64> = values.iter().map(|value| -value).collect();
    values.extend(negated);
    assert!(values.iter().all(|value| !value.is_normal()));
    check_against_reference(&values, "subnormals");
}

#[test]
fn integers_up_to_and_around_2_pow_53() {
    let mut values: Vec<f64> = (0..200_000u32).map(f64::from).collect();
    let limit = 1u64 << 53;
    values.extend((limit - 10_000..limit + 10_000).map(|value| value as f64));
    for shift in 0..=64 {
        let power = 2f64.powi(shift);
        values.extend([power - 3.0, power - 1.0, power, power + 1.0, power + 3.0]);
    }
    let mut random = XorShift(0x1234_5678_9ABC_DEF1);
    values.extend((0..500_000 / DEBUG_DIVISOR).map(|_| (random.next() % limit) as f64));
    let negated: Vec<f64> = values.iter().map(|value| -value).collect();
    values.extend(negated);
    check_against_reference(&values, "integers");
}

#[test]
fn random_bit_patterns() {
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    for _ in 0..64 / DEBUG_DIVISOR {
        let values: Vec<f64> = (0..65_536)
            .map(|_| f64::from_bits(random.next()))
            .filter(|value| value.is_finite())
            .collect();
        checked += check_against_reference(&values, "random bits");
    }
    assert!(checked > 4_000_000 / DEBUG_DIVISOR, "{checked}");
}

#[test]
fn random_short_decimals_and_log_probabilities() {
    let mut random = XorShift(0x0DEC_1A11_5EED_0001);
    let mut values = Vec::new();
    for _ in 0..1_000_000 / DEBUG_DIVISOR {
        // A decimal with up to 7 digits and up to 9 places, like typed-in constants.
        let digits = (random.next() % 10_000_000) as f64;
        let places = (random.next() % 10) as i32;
        values.push(digits / 10f64.powi(places));
        // ln(u), the log-probabilities a sampler returns, and the f32 ones.
        let uniform = (random.next() >> 11) as f64 / (1u64 << 53) as f64;
        let logprob = (uniform + f64::MIN_POSITIVE).ln();
        values.extend([logprob, f64::from(logprob as f32)]);
    }
    check_against_reference(&values, "decimals and log-probabilities");
}

#[test]
fn rewrite_reads_other_notations() {
    // The crate's uncommon forms take `rewrite`, which must lay out Python's repr from
    // any decimal form. The standard library writes plain (`0.00001`, `1000…000`
    // without `.0`), scientific (`1e16`, without the `+` that zmij writes) and debug
    // forms, and the fourth form adds that `+`.
    let mut random = XorShift(0x0707_0707_0707_0707);
    let mut values: Vec<f64> = powers_of_ten()
        .map(|(_, value)| value)
        .filter(|&value| value != 0.0)
        .collect();
    values.extend(
        (0..100_000 / DEBUG_DIVISOR)
            .map(|_| f64::from_bits(random.next()))
            .filter(|value| value.is_finite() && *value != 0.0),
    );
    values.extend([
        1e-5,
        1.2345e-5,
        0.001,
        0.5,
        123.0,
        1e15,
        9_999_999_999_999_998.0,
    ]);
    for value in values {
        // These forms carry the standard library's digits, which differ from Python's
        // in ties, so the expected repr is laid out from those digits.
        let (digits, exponent) = std_shortest_digits(value);
        let mut expected = String::new();
        push_python_layout(&mut expected, value < 0.0, &digits, exponent);
        let plus_exponent = format!("{value:e}").replace("e", "e+").replace("e+-", "e-");
        for text in [
            format!("{value}"),
            format!("{value:e}"),
            format!("{value:?}"),
            plus_exponent,
        ] {
            assert_eq!(rewrite_text(&text, value), expected, "from {text}");
        }
    }
}

#[test]
fn f32_values_are_widened_first() {
    let singles = [
        0.1f32,
        -0.1,
        1.0 / 3.0,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,
        0.0,
        -0.0,
    ];
    let widened: Vec<f64> = singles.iter().map(|&value| f64::from(value)).collect();
    assert_eq!(
        String::from_utf8(encode_f32s(&singles).unwrap()).unwrap(),
        python_array(&widened)
    );
    assert!(encode_f32s(&singles)
        .unwrap()
        .starts_with(b"[0.10000000149011612,"));
}

/// Checks a set of f32 bit patterns through widening, in chunks.
fn check_f32_bits(bits: impl Iterator<Item = u32>, case: &str) -> usize {
    let singles: Vec<f32> = bits.map(f32::from_bits).filter(|v| v.is_finite()).collect();
    let mut checked = 0;
    for chunk in singles.chunks(1 << 16) {
        let widened: Vec<f64> = chunk.iter().map(|&value| f64::from(value)).collect();
        let encoded = encode_f32s(chunk).unwrap();
        let expected = python_array(&widened);
        let avx2_matches = encode_f64s_on(FloatPath::Avx2, &widened)
            .is_none_or(|result| result.unwrap() == expected.as_bytes());
        if encoded != expected.as_bytes() || !avx2_matches {
            check_against_reference(&widened, case);
            panic!("{case}: encode_f32s differs from encode_f64s of the widened values");
        }
        checked += chunk.len();
    }
    checked
}

#[test]
fn f32_every_exponent_with_edge_mantissas() {
    let mut random = XorShift(0xF32F_32F3_2F32_F32F);
    let mut bits = Vec::new();
    for sign in [0u32, 1 << 31] {
        for exponent in 0..255u32 {
            let mut mantissas = vec![
                0, 1, 2, 3, 0x40_0000, 0x3F_FFFF, 0x40_0001, 0x7F_FFFE, 0x7F_FFFF,
            ];
            mantissas.extend((0..256).map(|_| (random.next() as u32) & 0x7F_FFFF));
            bits.extend(
                mantissas
                    .into_iter()
                    .map(|mantissa| sign | exponent << 23 | mantissa),
            );
        }
    }
    let checked = check_f32_bits(bits.into_iter(), "f32 classes");
    assert_eq!(checked, 2 * 255 * 265);
}

#[test]
fn f32_strided_sweep() {
    // Every 1021st bit pattern. The stride is odd, so the low mantissa bits do not
    // stay fixed as they would with a power-of-two stride.
    let stride = if cfg!(debug_assertions) {
        16_381
    } else {
        1_021
    };
    let checked = check_f32_bits((0..=u32::MAX).step_by(stride), "f32 sweep");
    assert!(checked > (1usize << 32) / stride * 99 / 100, "{checked}");
}

#[test]
#[ignore = "about 13 minutes on 2 vCPUs: cargo test --release -- --ignored every_f32"]
fn every_f32_bit_pattern() {
    let threads = std::thread::available_parallelism().map_or(1, |count| count.get());
    let per_thread = (1u64 << 32).div_ceil(threads as u64);
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|thread| {
                scope.spawn(move || {
                    let start = thread * per_thread;
                    let end = (start + per_thread).min(1 << 32);
                    let mut checked = 0;
                    let mut first = start;
                    while first < end {
                        let last = (first + (1 << 20)).min(end);
                        checked += check_f32_bits((first..last).map(|bits| bits as u32), "all f32");
                        first = last;
                    }
                    checked
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .sum()
    });
    // Every pattern but the 2 * 2^23 NaNs and infinities.
    assert_eq!(total, (1 << 32) - (1 << 24));
}

#[test]
fn non_finite_values_are_rejected_with_their_index() {
    let mut values = vec![1.5; 600];
    values[517] = f64::NAN;
    values[580] = f64::INFINITY;
    let Err(FloatError::NotFinite { index, value }) = encode_f64s(&values) else {
        panic!("NaN was accepted");
    };
    assert_eq!(index, 517);
    assert!(value.is_nan());
    assert_eq!(
        encode_f64s(&[0.0, f64::NEG_INFINITY]),
        Err(FloatError::NotFinite {
            index: 1,
            value: f64::NEG_INFINITY
        })
    );
    assert_eq!(
        encode_f32s(&[f32::INFINITY]),
        Err(FloatError::NotFinite {
            index: 0,
            value: f64::INFINITY
        })
    );
    assert!(write_repr(f64::NAN, &mut [0; MAX_REPR_LEN]).is_none());
}

#[test]
fn writer_reports_index_and_stays_usable_after_errors() {
    let mut writer = FloatWriter::with_capacity(2);
    writer.push_f64(0.5).unwrap();
    assert_eq!(
        writer.push_f64(f64::INFINITY),
        Err(FloatError::NotFinite {
            index: 1,
            value: f64::INFINITY
        })
    );
    // A failed extend appends none of its values, even those before the bad one and
    // in earlier blocks.
    let mut batch = vec![2.0; 700];
    batch[650] = f64::NAN;
    let Err(FloatError::NotFinite { index, .. }) = writer.extend_f64s(&batch) else {
        panic!("NaN was accepted");
    };
    assert_eq!(index, 651);
    assert_eq!(writer.len(), 1);
    writer.push_f64(-1e-7).unwrap();
    writer.extend_f64s(&[1e16, 0.1]).unwrap();
    assert_eq!(writer.len(), 4);
    assert_eq!(writer.finish().unwrap(), b"[0.5,-1e-07,1e+16,0.1]");
}

#[test]
fn writer_grows_past_its_initial_capacity() {
    let mut writer = FloatWriter::with_capacity(1);
    assert!(writer.is_empty());
    let values: Vec<f64> = (0..10_000)
        .map(|index| -f64::MIN_POSITIVE * f64::from(index))
        .collect();
    for &value in &values {
        writer.push_f64(value).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), python_array(&values).as_bytes());
    let writer = FloatWriter::with_capacity(usize::MAX / 4);
    assert_eq!(writer.finish().unwrap(), b"[]");
}

#[test]
fn empty_and_single_arrays() {
    assert_eq!(encode_f64s(&[]).unwrap(), b"[]");
    assert_eq!(encode_f32s(&[]).unwrap(), b"[]");
    assert_eq!(encode_f64s(&[-0.0]).unwrap(), b"[-0.0]");
    assert_eq!(
        encode_f64s(&[1.0, 0.25, 1e100]).unwrap(),
        b"[1.0,0.25,1e+100]"
    );
}

fn bytes_of(values: &[f64], element: FloatType, order: ByteOrder) -> Vec<u8> {
    let mut memory = Vec::new();
    for &value in values {
        let mut item = match element {
            FloatType::F32 => (value as f32).to_le_bytes().to_vec(),
            FloatType::F64 => value.to_le_bytes().to_vec(),
        };
        if order == ByteOrder::Big {
            item.reverse();
        }
        memory.extend_from_slice(&item);
    }
    memory
}

/// Returns values that both element types represent exactly.
fn sample_values(count: usize) -> Vec<f64> {
    (0..count)
        .map(|index| f64::from(index as f32 * -0.375 + 1e-3) * 2f64.powi(index as i32 % 40 - 20))
        .collect()
}

#[test]
fn buffers_of_both_types_and_byte_orders() {
    let values = sample_values(700);
    for element in [FloatType::F32, FloatType::F64] {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let memory = bytes_of(&values, element, order);
            let layout = FloatLayout {
                element,
                order,
                len: values.len(),
                stride: element.size() as isize,
            };
            let expected: Vec<f64> = match element {
                FloatType::F32 => values
                    .iter()
                    .map(|&value| f64::from(value as f32))
                    .collect(),
                FloatType::F64 => values.clone(),
            };
            assert_eq!(
                String::from_utf8(encode_buffer(&memory, 0, layout).unwrap()).unwrap(),
                python_array(&expected),
                "{element:?} {order:?}"
            );
        }
    }
    assert_eq!(FloatType::from_size(4), Some(FloatType::F32));
    assert_eq!(FloatType::from_size(8), Some(FloatType::F64));
    assert_eq!(FloatType::from_size(2), None);
}

#[test]
fn strided_reversed_and_broadcast_views() {
    let values = sample_values(100);
    let memory = bytes_of(&values, FloatType::F64, ByteOrder::Little);
    let layout = |len, stride| FloatLayout {
        element: FloatType::F64,
        order: ByteOrder::Little,
        len,
        stride,
    };

    let expected: Vec<f64> = values.iter().copied().step_by(3).collect();
    assert_eq!(
        encode_buffer(&memory, 0, layout(34, 24)).unwrap(),
        python_array(&expected).as_bytes()
    );
    let expected: Vec<f64> = values.iter().rev().copied().collect();
    assert_eq!(
        encode_buffer(&memory, 99 * 8, layout(100, -8)).unwrap(),
        python_array(&expected).as_bytes()
    );
    assert_eq!(
        encode_buffer(&memory, 8, layout(5, 0)).unwrap(),
        python_array(&[values[1]; 5]).as_bytes()
    );
    // f32 elements at an odd offset, every other one: unaligned loads.
    let mut unaligned = vec![0u8];
    unaligned.extend(bytes_of(&values, FloatType::F32, ByteOrder::Big));
    let every_other = FloatLayout {
        element: FloatType::F32,
        order: ByteOrder::Big,
        len: 50,
        stride: 8,
    };
    let expected: Vec<f64> = values
        .iter()
        .step_by(2)
        .map(|&value| f64::from(value as f32))
        .collect();
    assert_eq!(
        encode_buffer(&unaligned, 1, every_other).unwrap(),
        python_array(&expected).as_bytes()
    );
}

#[test]
fn non_finite_buffer_element_names_its_index() {
    let mut values = sample_values(300);
    values[257] = f64::NEG_INFINITY;
    let memory = bytes_of(&values, FloatType::F32, ByteOrder::Little);
    let layout = FloatLayout {
        element: FloatType::F32,
        order: ByteOrder::Little,
        len: 300,
        stride: 4,
    };
    assert_eq!(
        encode_buffer(&memory, 0, layout),
        Err(FloatError::NotFinite {
            index: 257,
            value: f64::NEG_INFINITY
        })
    );
}

#[test]
fn layouts_outside_the_memory_are_rejected() {
    let memory = [0u8; 16];
    let layout = |len, stride| FloatLayout {
        element: FloatType::F32,
        order: ByteOrder::Little,
        len,
        stride,
    };
    assert_eq!(
        encode_buffer(&memory, 0, layout(5, 4)),
        Err(FloatError::OutOfBounds {
            index: 4,
            buffer_len: 16
        })
    );
    assert_eq!(
        encode_buffer(&memory, 0, layout(2, -4)),
        Err(FloatError::OutOfBounds {
            index: 1,
            buffer_len: 16
        })
    );
    assert_eq!(
        encode_buffer(&memory, 13, layout(1, 4)),
        Err(FloatError::OutOfBounds {
            index: 0,
            buffer_len: 16
        })
    );
    assert!(encode_buffer(&memory, 0, layout(usize::MAX, isize::MAX)).is_err());
    assert_eq!(encode_buffer(&memory, 16, layout(0, 4)).unwrap(), b"[]");
    assert_eq!(encode_buffer(&memory, 12, layout(1, 4)).unwrap(), b"[0.0]");
}

#[test]
fn absurd_lengths_report_out_of_memory() {
    let memory = [0u8; 8];
    for len in [usize::MAX / 2, 1 << 44] {
        let broadcast = FloatLayout {
            element: FloatType::F64,
            order: ByteOrder::Little,
            len,
            stride: 0,
        };
        assert!(
            matches!(
                encode_buffer(&memory, 0, broadcast),
                Err(FloatError::OutOfMemory { .. })
            ),
            "{len}"
        );
    }
}

#[test]
fn errors_display_what_went_wrong() {
    let not_finite = FloatError::NotFinite {
        index: 3,
        value: f64::NAN,
    };
    assert_eq!(
        not_finite.to_string(),
        "element 3 is NaN, but JSON has no NaN or infinity: \
         replace or drop non-finite values before encoding"
    );
    let out_of_bounds = FloatError::OutOfBounds {
        index: 4,
        buffer_len: 16,
    };
    assert_eq!(
        out_of_bounds.to_string(),
        "element 4 lies outside the buffer of 16 bytes"
    );
    assert_eq!(
        FloatError::OutOfMemory { bytes: 10 }.to_string(),
        "cannot allocate 10 bytes for the JSON output"
    );
}

/// Checks that each vector path the CPU has writes `values` as the scalar path does,
/// and on a mismatch names the first value that differs.
fn check_simd_against_scalar(values: &[f64], case: &str) {
    let scalar = encode_f64s_on(FloatPath::Scalar, values).unwrap();
    for path in [FloatPath::Avx512, FloatPath::Avx2] {
        let Some(simd) = encode_f64s_on(path, values) else {
            continue;
        };
        if simd == scalar {
            continue;
        }
        for &value in values {
            let copies = [value; 9];
            assert_eq!(
                encode_f64s_on(path, &copies).unwrap(),
                encode_f64s_on(FloatPath::Scalar, &copies).unwrap(),
                "{case}: {path:?}, value with bits {:#018x}",
                value.to_bits()
            );
        }
        panic!("{case}: {path:?}: the arrays differ although every value matches");
    }
}

#[test]
fn simd_path_is_taken_on_this_cpu() {
    let values = [0.5, -1.25, 1e-5, 1e16, 0.0, -0.0, 123.0, 0.1];
    if !std::is_x86_feature_detected!("avx512ifma") || !std::is_x86_feature_detected!("avx512vbmi")
    {
        assert_eq!(simd_group(&values), None);
        return;
    }
    assert_eq!(
        simd_group(&values).unwrap(),
        b",0.5,-1.25,1e-05,1e+16,0.0,-0.0,123.0,0.1"
    );
    let mut with_subnormal = values;
    with_subnormal[3] = 5e-324;
    assert_eq!(simd_group(&with_subnormal), None);
    let mut with_nan = values;
    with_nan[7] = f64::NAN;
    assert_eq!(simd_group(&with_nan), None);
}

#[test]
fn avx2_path_is_taken_on_this_cpu() {
    let values = [-1e-5, 1e16, -0.0, 0.1];
    if !std::is_x86_feature_detected!("avx2") {
        assert_eq!(avx2_group(&values), None);
        return;
    }
    assert_eq!(avx2_group(&values).unwrap(), b",-1e-05,1e+16,-0.0,0.1");
    assert_eq!(avx2_group(&[0.5, 5e-324, 1.0, 2.0]), None);
    assert_eq!(avx2_group(&[0.5, 1.0, 2.0, f64::INFINITY]), None);
}

#[test]
fn simd_path_matches_scalar_on_random_bits() {
    let mut random = XorShift(0x5EED_0FA1_1B17_5EED);
    for _ in 0..256 / DEBUG_DIVISOR {
        let values: Vec<f64> = (0..131_072)
            .map(|_| f64::from_bits(random.next()))
            .filter(|value| value.is_finite())
            .collect();
        check_simd_against_scalar(&values, "random bits");
    }
}

#[test]
fn simd_path_matches_scalar_on_every_exponent() {
    let mut random = XorShift(0xE4B0_7E47_0000_0001);
    let top = (1u64 << 52) - 1;
    let mut values = Vec::new();
    for biased in 0..2047u64 {
        let mut fractions = vec![0, 1, 2, 3, top, top - 1, top - 2, 1 << 51, (1 << 51) - 1];
        fractions.extend((0..64 / DEBUG_DIVISOR).map(|_| random.next() & top));
        for fraction in fractions {
            let bits = (biased << 52) | fraction;
            values.push(f64::from_bits(bits));
            values.push(-f64::from_bits(bits));
        }
    }
    check_simd_against_scalar(&values, "every exponent");
}

#[test]
fn simd_matches_scalar_on_decimals() {
    // m * 10^e with 1 to 17 digits in m, across the whole exponent range, and the
    // doubles next to each: every notation, length and count of trailing zeros.
    let mut random = XorShift(0xDEC1_3A15_0F00_0017);
    let mut values = Vec::new();
    for exponent in -340..=310 {
        for digits in 1..=17u32 {
            for _ in 0..4 {
                let low = 10u64.pow(digits - 1);
                let mantissa = low + random.next() % (9 * low);
                let value: f64 = format!("{mantissa}e{exponent}").parse().unwrap();
                if value.is_finite() {
                    values.extend([value, value.next_up(), value.next_down(), -value]);
                }
            }
        }
    }
    check_simd_against_scalar(&values, "decimals");
}

#[test]
fn simd_groups_with_special_lanes_fall_back() {
    let specials = [
        0.0,
        -0.0,
        5e-324,
        -f64::from_bits((1 << 52) - 1),
        f64::MIN_POSITIVE,
        f64::MAX,
        -f64::MAX,
    ];
    for special in specials {
        for lane in 0..24 {
            let mut values: Vec<f64> = (0..24).map(|index| 0.1 * f64::from(index) - 1.0).collect();
            values[lane] = special;
            for path in [FloatPath::Avx512, FloatPath::Avx2] {
                if let Some(result) = encode_f64s_on(path, &values) {
                    assert_eq!(
                        result.unwrap(),
                        python_array(&values).as_bytes(),
                        "{path:?}: {special:e} at {lane}"
                    );
                }
            }
        }
    }
    for lane in 0..24 {
        let mut values = vec![-0.75; 24];
        values[lane] = f64::NEG_INFINITY;
        for path in [FloatPath::Avx512, FloatPath::Avx2, FloatPath::Scalar] {
            if let Some(result) = encode_f64s_on(path, &values) {
                assert_eq!(
                    result,
                    Err(FloatError::NotFinite {
                        index: lane,
                        value: f64::NEG_INFINITY
                    }),
                    "{path:?}"
                );
            }
        }
    }
}

#[test]
#[ignore = "about 8 minutes on 2 vCPUs: cargo test --release -- --ignored simd_soak"]
fn simd_soak_over_4_billion_random_doubles() {
    let mut random = XorShift(0x50A4_0000_F10A_7564);
    for _ in 0..32_768 {
        let values: Vec<f64> = (0..131_072)
            .map(|_| f64::from_bits(random.next()))
            .filter(|value| value.is_finite())
            .collect();
        check_simd_against_scalar(&values, "soak");
    }
}

use crate::encode::{
    decimal_len, encode_buffer, encode_i64s, encode_range, encode_u64s, ArrayWriter, ByteOrder,
    ElementType, EncodeError, Layout,
};

/// Formats `values` as `json.dumps(values, separators=(",", ":"))` does, the reference.
fn reference<T: ToString>(values: &[T]) -> Vec<u8> {
    let items: Vec<String> = values.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(",")).into_bytes()
}

const BOUNDARIES: [u64; 12] = [
    0,
    9,
    10,
    99,
    100,
    999_999,
    1_000_000,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    (1 << 63) - 1,
    u64::MAX,
];

#[test]
fn decimal_len_at_powers_of_ten() {
    for power in 0..20u32 {
        let value = 10u64.pow(power);
        assert_eq!(decimal_len(value), value.to_string().len(), "10^{power}");
        assert_eq!(
            decimal_len(value - 1),
            (value - 1).to_string().len().max(1),
            "10^{power} - 1"
        );
    }
    assert_eq!(decimal_len(u64::MAX), 20);
    assert_eq!(decimal_len(0), 1);
}

#[test]
fn every_value_below_2_pow_24() {
    // Exhaustive over the range every tokenizer vocabulary in use falls into.
    let values: Vec<u64> = (0..1u64 << 24).collect();
    let encoded = encode_u64s(&values).unwrap();
    let mut expected = Vec::with_capacity(encoded.len());
    expected.push(b'[');
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            expected.push(b',');
        }
        expected.extend_from_slice(value.to_string().as_bytes());
    }
    expected.push(b']');
    assert_eq!(encoded.len(), expected.len());
    assert!(encoded == expected);
}

#[test]
fn boundary_values_signed_and_unsigned() {
    assert_eq!(encode_u64s(&BOUNDARIES).unwrap(), reference(&BOUNDARIES));
    let signed: Vec<i64> = BOUNDARIES
        .iter()
        .flat_map(|&value| {
            let value = value.min(i64::MAX as u64) as i64;
            [value, -value]
        })
        .chain([i64::MIN, i64::MIN + 1, -1])
        .collect();
    assert_eq!(encode_i64s(&signed).unwrap(), reference(&signed));
}

#[test]
fn empty_and_single_arrays() {
    assert_eq!(encode_i64s(&[]).unwrap(), b"[]");
    assert_eq!(encode_i64s(&[0]).unwrap(), b"[0]");
    assert_eq!(
        encode_u64s(&[151_643, 872, 25]).unwrap(),
        b"[151643,872,25]"
    );
}

#[test]
fn writer_accepts_wide_decimals_and_rejects_other_text() {
    let mut writer = ArrayWriter::with_capacity(0);
    writer.push_i64(-1).unwrap();
    writer.push_decimal(b"1180591620717411303424").unwrap();
    writer.push_decimal(b"-36893488147419103232").unwrap();
    assert_eq!(
        writer.push_decimal(b"12a"),
        Err(EncodeError::InvalidDecimal)
    );
    assert_eq!(writer.push_decimal(b"-"), Err(EncodeError::InvalidDecimal));
    assert_eq!(writer.push_decimal(b""), Err(EncodeError::InvalidDecimal));
    assert_eq!(writer.len(), 3);
    assert_eq!(
        writer.finish().unwrap(),
        b"[-1,1180591620717411303424,-36893488147419103232]"
    );
}

#[test]
fn writer_grows_past_its_initial_capacity() {
    let mut writer = ArrayWriter::with_capacity(1);
    let values: Vec<i64> = (0..10_000).map(|value| i64::MIN + value).collect();
    for &value in &values {
        writer.push_i64(value).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), reference(&values));
}

fn bytes_of(values: &[i64], element: ElementType, order: ByteOrder) -> Vec<u8> {
    let size = element.size();
    let mut memory = Vec::new();
    for &value in values {
        let little = value.to_le_bytes();
        let mut item = little[..size].to_vec();
        if order == ByteOrder::Big {
            item.reverse();
        }
        memory.extend_from_slice(&item);
    }
    memory
}

/// Values that fit every element type, including each type's extremes.
fn values_for(element: ElementType) -> Vec<i64> {
    let (min, max): (i64, i64) = match element {
        ElementType::I8 => (i8::MIN.into(), i8::MAX.into()),
        ElementType::U8 => (0, u8::MAX.into()),
        ElementType::I16 => (i16::MIN.into(), i16::MAX.into()),
        ElementType::U16 => (0, u16::MAX.into()),
        ElementType::I32 => (i32::MIN.into(), i32::MAX.into()),
        ElementType::U32 => (0, u32::MAX.into()),
        ElementType::I64 => (i64::MIN, i64::MAX),
        ElementType::U64 => (0, i64::MAX),
    };
    let mut values = vec![min, max, 0, 1, 9, 10, 99, 100];
    values.extend((0..600).map(|step| min.saturating_add(step * 7919)));
    values.retain(|&value| value >= min && value <= max);
    values
}

const ELEMENTS: [ElementType; 8] = [
    ElementType::I8,
    ElementType::U8,
    ElementType::I16,
    ElementType::U16,
    ElementType::I32,
    ElementType::U32,
    ElementType::I64,
    ElementType::U64,
];

#[test]
fn buffers_of_every_type_and_byte_order() {
    for element in ELEMENTS {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let values = values_for(element);
            let memory = bytes_of(&values, element, order);
            let stride = element.size() as isize;
            let layout = Layout {
                element,
                order,
                len: values.len(),
                stride,
            };
            assert_eq!(
                encode_buffer(&memory, 0, layout).unwrap(),
                reference(&values),
                "{element:?} {order:?}"
            );
        }
    }
}

#[test]
fn u64_buffer_above_i64_max() {
    let values = [u64::MAX, 1 << 63, 0];
    let memory: Vec<u8> = values
        .iter()
        .flat_map(|value| value.to_be_bytes())
        .collect();
    let layout = Layout {
        element: ElementType::U64,
        order: ByteOrder::Big,
        len: 3,
        stride: 8,
    };
    assert_eq!(
        encode_buffer(&memory, 0, layout).unwrap(),
        reference(&values)
    );
}

#[test]
fn strided_reversed_and_broadcast_views() {
    let values: Vec<i64> = (0..100).map(|value| value * 1_000_003 - 7).collect();
    let memory = bytes_of(&values, ElementType::I32, ByteOrder::Little);

    let every_third = Layout {
        element: ElementType::I32,
        order: ByteOrder::Little,
        len: 34,
        stride: 12,
    };
    let expected: Vec<i64> = values.iter().copied().step_by(3).collect();
    assert_eq!(
        encode_buffer(&memory, 0, every_third).unwrap(),
        reference(&expected)
    );

    let reversed = Layout {
        element: ElementType::I32,
        order: ByteOrder::Little,
        len: 100,
        stride: -4,
    };
    let expected: Vec<i64> = values.iter().rev().copied().collect();
    assert_eq!(
        encode_buffer(&memory, 99 * 4, reversed).unwrap(),
        reference(&expected)
    );

    let broadcast = Layout {
        element: ElementType::I32,
        order: ByteOrder::Little,
        len: 5,
        stride: 0,
    };
    assert_eq!(
        encode_buffer(&memory, 4, broadcast).unwrap(),
        reference(&[values[1]; 5])
    );
}

#[test]
fn layouts_outside_the_memory_are_rejected() {
    let memory = [0u8; 16];
    let layout = |len, stride| Layout {
        element: ElementType::I32,
        order: ByteOrder::Little,
        len,
        stride,
    };
    assert_eq!(
        encode_buffer(&memory, 0, layout(5, 4)),
        Err(EncodeError::OutOfBounds {
            index: 4,
            buffer_len: 16
        })
    );
    assert_eq!(
        encode_buffer(&memory, 0, layout(2, -4)),
        Err(EncodeError::OutOfBounds {
            index: 1,
            buffer_len: 16
        })
    );
    assert_eq!(
        encode_buffer(&memory, 13, layout(1, 4)),
        Err(EncodeError::OutOfBounds {
            index: 0,
            buffer_len: 16
        })
    );
    assert!(encode_buffer(&memory, 0, layout(usize::MAX, isize::MAX)).is_err());
    assert_eq!(encode_buffer(&memory, 16, layout(0, 4)).unwrap(), b"[]");
}

#[test]
fn ranges_match_python_range() {
    let cases: [(i64, i64, usize); 5] = [
        (0, 1, 10),
        (3, -4, 4),
        (-5, 7, 0),
        (i64::MAX - 2, 1, 3),
        (i64::MIN, 1, 2),
    ];
    for (start, step, len) in cases {
        let expected: Vec<i64> = (0..len as i64).map(|index| start + index * step).collect();
        assert_eq!(
            encode_range(start, step, len).unwrap(),
            reference(&expected),
            "{start} {step} {len}"
        );
    }
    assert_eq!(
        encode_range(i64::MAX, 1, 2),
        Err(EncodeError::RangeOverflow)
    );
    assert_eq!(
        encode_range(i64::MIN, -1, 2),
        Err(EncodeError::RangeOverflow)
    );
}

#[test]
fn errors_display_what_went_wrong() {
    let error = EncodeError::OutOfBounds {
        index: 4,
        buffer_len: 16,
    };
    assert_eq!(
        error.to_string(),
        "element 4 lies outside the buffer of 16 bytes"
    );
    assert_eq!(
        EncodeError::RangeOverflow.to_string(),
        "range values do not fit in a signed 64-bit integer"
    );
}

#[test]
fn sampled_values_up_to_u64_max() {
    // Every 7th value below 10^8 covers each digit count of the 8-digit fast path
    // with all residues of the lane divisions, in chunks to bound memory.
    let mut start = 0u64;
    while start < 100_000_000 {
        let values: Vec<u64> = (start..(start + 7_000_000).min(100_000_000))
            .step_by(7)
            .collect();
        assert_eq!(
            encode_u64s(&values).unwrap(),
            reference(&values),
            "chunk from {start}"
        );
        start += 7_000_000;
    }
    let mut edges = Vec::new();
    for power in 0..20u32 {
        let value = 10u64.pow(power);
        edges.extend([
            value - 1,
            value,
            value + 1,
            value.saturating_mul(7).saturating_add(3),
        ]);
    }
    edges.extend([
        u64::MAX,
        u64::MAX - 1,
        99_999_999_999_999_999,
        10_000_000_000_000_000_000,
    ]);
    assert_eq!(encode_u64s(&edges).unwrap(), reference(&edges));
    let signed: Vec<i64> = edges.iter().map(|&value| -((value >> 1) as i64)).collect();
    assert_eq!(encode_i64s(&signed).unwrap(), reference(&signed));
}

#[test]
fn absurd_lengths_report_out_of_memory() {
    assert_eq!(
        encode_range(0, 1, usize::MAX),
        Err(EncodeError::RangeOverflow)
    );
    assert!(matches!(
        encode_range(0, 0, usize::MAX),
        Err(EncodeError::OutOfMemory { .. })
    ));
    assert!(matches!(
        encode_range(0, 1, 1 << 44),
        Err(EncodeError::OutOfMemory { .. })
    ));
    assert!(matches!(
        encode_range(0, 0, 1 << 62),
        Err(EncodeError::OutOfMemory { .. })
    ));
    let memory = [7u8; 1];
    let broadcast = Layout {
        element: ElementType::U8,
        order: ByteOrder::Little,
        len: usize::MAX / 2,
        stride: 0,
    };
    assert!(matches!(
        encode_buffer(&memory, 0, broadcast),
        Err(EncodeError::OutOfMemory { .. })
    ));
    let error = EncodeError::OutOfMemory { bytes: 10 };
    assert_eq!(
        error.to_string(),
        "cannot allocate 10 bytes for the JSON output"
    );
}

#[test]
fn capacity_hint_too_large_to_allocate_still_works() {
    let mut writer = ArrayWriter::with_capacity(usize::MAX / 4);
    writer.extend_u64(&[0, 1, 2]).unwrap();
    assert_eq!(writer.finish().unwrap(), b"[0,1,2]");
}

#[test]
fn scalar_and_vector_formatters_agree() {
    use crate::encode::Formatter;
    // Mixed lengths, values at the 10^7 and 10^8 boundaries and beyond, in groups that
    // each vector path takes whole, splits or leaves to a narrower path.
    let mut values: Vec<u64> = (0..1u64 << 20)
        .map(|value| value * 97 % 100_000_123)
        .collect();
    values.extend((0..4096).map(|value| value * 2_441 % 10_000_019));
    values.extend([
        9_999_999,
        10_000_000,
        99_999_999,
        100_000_000,
        5,
        7,
        u64::MAX,
    ]);
    values.extend([
        1, 2, 3, 4, 0, 0, 0, 0, 0, 9, 10, 99, 100, 999, 1_000, 9_999_999,
    ]);
    let outputs: Vec<Vec<u8>> = [Formatter::Scalar, Formatter::Avx2, Formatter::Avx512]
        .into_iter()
        .map(|limit| {
            let mut writer = ArrayWriter::with_capacity(values.len());
            for chunk in values.chunks(251) {
                writer.extend_u64_limited(chunk, limit).unwrap();
            }
            writer.finish().unwrap()
        })
        .collect();
    let expected = reference(&values);
    for output in &outputs {
        assert!(*output == expected);
    }
}

#[test]
fn widest_forms_of_element_types() {
    use crate::encode::max_json_len;
    let cases: [(i128, i128, usize); 8] = [
        (i8::MIN.into(), i8::MAX.into(), 4),
        (0, u8::MAX.into(), 3),
        (i16::MIN.into(), i16::MAX.into(), 6),
        (0, u16::MAX.into(), 5),
        (i32::MIN.into(), i32::MAX.into(), 11),
        (0, u32::MAX.into(), 10),
        (i64::MIN.into(), i64::MAX.into(), 20),
        (0, u64::MAX.into(), 20),
    ];
    for (min, max, expected) in cases {
        assert_eq!(max_json_len(min, max), expected, "{min}..={max}");
        assert_eq!(
            max_json_len(min, max),
            min.to_string().len().max(max.to_string().len())
        );
    }
}

#[test]
fn bounded_buffer_matches_growing_writer() {
    for element in ELEMENTS {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let values = values_for(element);
            let memory = bytes_of(&values, element, order);
            let size = element.size() as isize;
            for (start, stride, len) in [
                (0, size, values.len()),
                (memory.len() - element.size(), -size, values.len()),
                (0, 3 * size, values.len() / 3),
                (0, 0, 5),
            ] {
                let layout = Layout {
                    element,
                    order,
                    len,
                    stride,
                };
                let expected = encode_buffer(&memory, start, layout).unwrap();
                let bound = crate::encode::max_output_len(layout).unwrap();
                // Filled with a marker, so a store past the bound would show up as a
                // changed byte after it.
                let mut out = vec![0xAAu8; bound + 64];
                // SAFETY: `encode_buffer` accepted the layout for `memory`, and `out`
                // is longer than the bound.
                let written = unsafe {
                    crate::encode::encode_raw_into(
                        memory.as_ptr().add(start),
                        layout,
                        out.as_mut_ptr(),
                    )
                };
                assert_eq!(
                    &out[..written],
                    expected.as_slice(),
                    "{element:?} {order:?} {stride}"
                );
                assert!(out[bound..].iter().all(|&byte| byte == 0xAA));
            }
        }
    }
}

#[test]
fn exact_length_and_exactly_sized_output() {
    use crate::encode::{encode_raw_into_bounded, output_len, STORE_SLACK};
    let mut layouts = Vec::new();
    for element in ELEMENTS {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let mut values = values_for(element);
            // Long enough for several blocks and for the vector paths.
            let max = values.iter().copied().max().unwrap_or(0);
            values.extend((0..2_000).map(|value| value * 7_919 % 30_011 % max.saturating_add(1)));
            layouts.push((element, order, values));
        }
    }
    layouts.push((ElementType::U32, ByteOrder::Little, Vec::new()));
    // One block only, found by the fuzz target: the room must not count a comma
    // before the first item.
    layouts.push((ElementType::I8, ByteOrder::Little, vec![0; 226]));
    layouts.push((ElementType::U64, ByteOrder::Big, vec![7]));
    for (element, order, values) in layouts {
        let memory = bytes_of(&values, element, order);
        let size = element.size() as isize;
        let layout = Layout {
            element,
            order,
            len: values.len(),
            stride: size,
        };
        let expected = encode_buffer(&memory, 0, layout).unwrap();
        // SAFETY: `encode_buffer` accepted the layout for `memory`.
        let len = unsafe { output_len(memory.as_ptr(), layout) };
        assert_eq!(len, expected.len(), "{element:?} {order:?}");
        for capacity in [len + STORE_SLACK, len + STORE_SLACK - 1, len] {
            let mut out = vec![0xAAu8; capacity + 64];
            // SAFETY: as above, and `out` is longer than `capacity`.
            let written = unsafe {
                encode_raw_into_bounded(memory.as_ptr(), layout, out.as_mut_ptr(), capacity)
            };
            if capacity >= len + STORE_SLACK {
                assert_eq!(written, Some(len));
                assert_eq!(&out[..len], expected.as_slice());
            } else {
                assert_eq!(written, None, "{element:?} {order:?} {capacity}");
            }
            assert!(out[capacity..].iter().all(|&byte| byte == 0xAA));
        }
    }
}

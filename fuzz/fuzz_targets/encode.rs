//! Fuzz target over the plain Rust encoder: every entry point, compared with a
//! reference written with `format!`.
//!
//! The first bytes choose the element type, byte order, stride, start and length;
//! the rest is the buffer. The same bytes also feed the slice encoders and a writer
//! that mixes every kind of append.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tinker_accel::encode::{
    encode_buffer, encode_i64s, encode_range, encode_raw_into_bounded, encode_u64s, output_len,
    ArrayWriter, ByteOrder, ElementType, Layout, STORE_SLACK,
};

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

fn reference<T: ToString>(values: impl IntoIterator<Item = T>) -> Vec<u8> {
    let items: Vec<String> = values.into_iter().map(|value| value.to_string()).collect();
    format!("[{}]", items.join(",")).into_bytes()
}

/// Reads the element at `at` with the given type and byte order, widened to i128.
fn element_at(memory: &[u8], at: usize, element: ElementType, order: ByteOrder) -> i128 {
    let size = element.size();
    let mut bytes = [0u8; 8];
    bytes[..size].copy_from_slice(&memory[at..at + size]);
    if order == ByteOrder::Big {
        bytes[..size].reverse();
    }
    let unsigned = u64::from_le_bytes(bytes);
    let signed = matches!(
        element,
        ElementType::I8 | ElementType::I16 | ElementType::I32 | ElementType::I64
    );
    if signed {
        let shift = 64 - 8 * size as u32;
        i128::from(((unsigned << shift) as i64) >> shift)
    } else {
        i128::from(unsigned)
    }
}

/// Element addresses of `layout` from `start`, or `None` if one lies outside `len`.
fn addresses(start: usize, layout: Layout, len: usize) -> Option<Vec<usize>> {
    (0..layout.len)
        .map(|index| {
            let at = start as isize + index as isize * layout.stride;
            let at = usize::try_from(at).ok()?;
            (at + layout.element.size() <= len).then_some(at)
        })
        .collect()
}

fn check_buffer(control: &[u8], memory: &[u8]) {
    let element = ELEMENTS[usize::from(control[0] % 8)];
    let order = if control[0] & 8 == 0 {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    };
    let stride = isize::from(control[1] as i8);
    let start = usize::from(control[2]).min(memory.len());
    let len = usize::from(u16::from_le_bytes([control[3], control[4]]));
    let layout = Layout {
        element,
        order,
        len,
        stride,
    };
    let result = encode_buffer(memory, start, layout);
    let Some(addresses) = addresses(start, layout, memory.len()) else {
        assert!(
            result.is_err(),
            "{layout:?} from {start} should be out of bounds"
        );
        return;
    };
    let expected = reference(
        addresses
            .iter()
            .map(|&at| element_at(memory, at, element, order)),
    );
    assert_eq!(result.unwrap(), expected, "{layout:?} from {start}");

    // SAFETY: every element address was checked to lie inside `memory`.
    let base = unsafe { memory.as_ptr().add(start) };
    // SAFETY: as above.
    assert_eq!(unsafe { output_len(base, layout) }, expected.len());
    // Room for the output and the slack, then one byte short of it: the second must
    // be refused without a write past the room, which the guard bytes show.
    for capacity in [
        expected.len() + STORE_SLACK,
        expected.len() + STORE_SLACK - 1,
    ] {
        let mut out = vec![0xA5u8; capacity + 32];
        // SAFETY: as above, and `out` is longer than `capacity`.
        let written = unsafe { encode_raw_into_bounded(base, layout, out.as_mut_ptr(), capacity) };
        if capacity >= expected.len() + STORE_SLACK {
            assert_eq!(written, Some(expected.len()));
            assert_eq!(&out[..expected.len()], expected.as_slice());
        } else {
            assert_eq!(written, None);
        }
        assert!(out[capacity..].iter().all(|&byte| byte == 0xA5));
    }
}

fn check_slices_and_writer(memory: &[u8]) {
    let words: Vec<[u8; 8]> = memory
        .chunks_exact(8)
        .map(|chunk| chunk.try_into().unwrap())
        .collect();
    let signed: Vec<i64> = words.iter().map(|&word| i64::from_le_bytes(word)).collect();
    let unsigned: Vec<u64> = words.iter().map(|&word| u64::from_le_bytes(word)).collect();
    // Small values too, which take the vector paths.
    let small: Vec<i64> = signed.iter().map(|&value| value % 20_000_000).collect();
    assert_eq!(encode_i64s(&signed).unwrap(), reference(&signed));
    assert_eq!(encode_u64s(&unsigned).unwrap(), reference(&unsigned));
    assert_eq!(encode_i64s(&small).unwrap(), reference(&small));

    // A writer fed in uneven pieces, with wide decimals between them.
    let mut writer = ArrayWriter::with_capacity(usize::from(memory.first().copied().unwrap_or(0)));
    let mut expected: Vec<String> = Vec::new();
    for (index, piece) in small.chunks(1 + index_step(memory)).enumerate() {
        match index % 3 {
            0 => writer.extend_i64(piece).unwrap(),
            1 => {
                let as_unsigned: Vec<u64> =
                    piece.iter().map(|value| value.unsigned_abs()).collect();
                writer.extend_u64(&as_unsigned).unwrap();
                expected.extend(as_unsigned.iter().map(u64::to_string));
                continue;
            }
            _ => {
                // Wider than 64 bits, as Python's own digits would be.
                let wide = format!("{}{:019}", piece[0].max(1), piece.len());
                writer.push_decimal(wide.as_bytes()).unwrap();
                expected.push(wide);
                writer.extend_i64(piece).unwrap();
            }
        }
        expected.extend(piece.iter().map(i64::to_string));
    }
    assert_eq!(writer.len(), expected.len());
    assert_eq!(
        writer.finish().unwrap(),
        format!("[{}]", expected.join(",")).into_bytes()
    );

    if let [start, step, ..] = signed[..] {
        let len = (step.unsigned_abs() % 300) as usize;
        let step = step % 1_000_000_007;
        match encode_range(start, step, len) {
            Ok(encoded) => {
                let values =
                    (0..len as i128).map(|index| i128::from(start) + index * i128::from(step));
                assert_eq!(encoded, reference(values));
            }
            Err(_) => {
                // Only a range whose last value leaves i64 is refused.
                let last = i128::from(start) + (len as i128 - 1) * i128::from(step);
                assert!(len > 0);
                assert!(i64::try_from(last).is_err());
            }
        }
    }
}

fn index_step(memory: &[u8]) -> usize {
    usize::from(memory.last().copied().unwrap_or(0) % 17)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (control, memory) = data.split_at(5);
    check_buffer(control, memory);
    check_slices_and_writer(memory);
});

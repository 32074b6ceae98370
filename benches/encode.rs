//! Criterion benchmarks of the plain Rust encoder against a reference scalar loop.
//!
//! The reference loop formats each number with a digit-pair table into a preallocated
//! buffer: the classic scalar technique, measured in the same run as the encoder so
//! the ratio between them does not depend on the machine's speed that day.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tinker_accel::encode::{encode_buffer, encode_i64s, ByteOrder, ElementType, Layout};

const SIZES: [usize; 4] = [1 << 10, 1 << 13, 1 << 17, 1 << 20];
/// Vocabulary sizes of two common tokenizers: Qwen's and Llama 2's.
const VOCABULARIES: [u64; 2] = [151_936, 32_000];

static DIGIT_PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut pair = 0;
    while pair < 100 {
        table[2 * pair] = b'0' + (pair / 10) as u8;
        table[2 * pair + 1] = b'0' + (pair % 10) as u8;
        pair += 1;
    }
    table
};

/// Formats non-negative values as a JSON array with a digit-pair table, into a buffer
/// sized for the worst case up front.
fn reference_scalar_loop(values: &[u32], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(values.len() * 11 + 2);
    out.push(b'[');
    for (index, &value) in values.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let mut digits = [0u8; 10];
        let mut cursor = digits.len();
        let mut rest = value;
        while rest >= 100 {
            let pair = (rest % 100) as usize * 2;
            rest /= 100;
            cursor -= 2;
            digits[cursor..cursor + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        }
        if rest >= 10 {
            cursor -= 2;
            digits[cursor..cursor + 2]
                .copy_from_slice(&DIGIT_PAIRS[rest as usize * 2..rest as usize * 2 + 2]);
        } else {
            cursor -= 1;
            digits[cursor] = b'0' + rest as u8;
        }
        out.extend_from_slice(&digits[cursor..]);
    }
    out.push(b']');
}

/// Returns pseudo-random token IDs below `vocabulary`, the same on every run (xorshift).
fn token_ids(count: usize, vocabulary: u64, seed: u64) -> Vec<u32> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocabulary) as u32
        })
        .collect()
}

fn bench_encoders(criterion: &mut Criterion) {
    for vocabulary in VOCABULARIES {
        let mut group = criterion.benchmark_group(format!("token_ids_below_{vocabulary}"));
        for size in SIZES {
            let ids = token_ids(size, vocabulary, 0x5EED ^ size as u64);
            let as_i64: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
            let as_bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
            let layout = Layout {
                element: ElementType::I32,
                order: ByteOrder::Little,
                len: size,
                stride: 4,
            };
            group.throughput(Throughput::Elements(size as u64));

            let mut out = Vec::new();
            group.bench_with_input(
                BenchmarkId::new("reference_scalar_loop", size),
                &ids,
                |bench, ids| {
                    bench.iter(|| reference_scalar_loop(black_box(ids), &mut out));
                },
            );
            group.bench_with_input(
                BenchmarkId::new("encode_i64s", size),
                &as_i64,
                |bench, values| {
                    bench.iter(|| encode_i64s(black_box(values)).unwrap());
                },
            );
            group.bench_with_input(
                BenchmarkId::new("encode_buffer_i32", size),
                &as_bytes,
                |bench, memory| {
                    bench.iter(|| encode_buffer(black_box(memory), 0, layout).unwrap());
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench_encoders);
criterion_main!(benches);

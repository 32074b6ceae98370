//! Criterion benchmarks of the float encoder against a reference loop that writes
//! each value with the standard library's `Display`, measured in the same run so the
//! ratio between them does not depend on the machine's speed that day.
//!
//! `Display` writes `1` where Python writes `1.0` and never uses an exponent, so the
//! reference produces different bytes: it times the usual way to format floats in
//! Rust, not a correct encoder. A second reference appends the `zmij` crate's text of
//! each value as it is, the plain way to use that crate, whose notation differs from
//! Python's.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tinker_accel::encode::ByteOrder;
use tinker_accel::floats::{
    encode_buffer, encode_f32s, encode_f64s, encode_f64s_on, FloatLayout, FloatPath, FloatType,
};

const SIZES: [usize; 2] = [1 << 13, 1 << 17];

/// Formats `values` as a JSON-like array with `Display`, into a reused string.
fn reference_display_loop(values: &[f64], out: &mut String) {
    out.clear();
    out.push('[');
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write!(out, "{value}").unwrap();
    }
    out.push(']');
}

/// Appends the `zmij` crate's own text of each value, unchanged, to a buffer sized
/// for the worst case.
fn reference_zmij_text(values: &[f64], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(values.len() * 25 + 2);
    out.push(b'[');
    for (index, &value) in values.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    }
    out.push(b']');
}

/// Returns pseudo-random numbers in `[0, 1)`, the same on every run (xorshift).
fn uniform(count: usize, seed: u64) -> Vec<f64> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Returns log-probabilities `ln(u)`, which mostly take 16 or 17 significant digits.
fn logprobs(count: usize, seed: u64) -> Vec<f64> {
    uniform(count, seed)
        .into_iter()
        .map(|u| (u + f64::MIN_POSITIVE).ln())
        .collect()
}

/// Returns loss weights, three quarters `1.0` and a quarter `0.0` in random order,
/// which is harder on branch prediction than the runs of a real mask.
fn weights(count: usize, seed: u64) -> Vec<f64> {
    uniform(count, seed)
        .into_iter()
        .map(|u| if u < 0.25 { 0.0 } else { 1.0 })
        .collect()
}

fn bench_floats(criterion: &mut Criterion) {
    type Generator = fn(usize, u64) -> Vec<f64>;
    let datasets: [(&str, Generator); 2] = [("logprobs", logprobs), ("weights", weights)];
    for (name, generate) in datasets {
        let mut group = criterion.benchmark_group(format!("floats_{name}"));
        for size in SIZES {
            let doubles = generate(size, 0x5EED ^ size as u64);
            let singles: Vec<f32> = doubles.iter().map(|&value| value as f32).collect();
            let widened: Vec<f64> = singles.iter().map(|&value| f64::from(value)).collect();
            let single_bytes: Vec<u8> = singles.iter().flat_map(|v| v.to_le_bytes()).collect();
            let layout = FloatLayout {
                element: FloatType::F32,
                order: ByteOrder::Little,
                len: size,
                stride: 4,
            };
            group.throughput(Throughput::Elements(size as u64));

            let mut out = String::new();
            group.bench_with_input(
                BenchmarkId::new("reference_display_f64", size),
                &doubles,
                |bench, values| bench.iter(|| reference_display_loop(black_box(values), &mut out)),
            );
            let mut bytes = Vec::new();
            group.bench_with_input(
                BenchmarkId::new("reference_zmij_text_f64", size),
                &doubles,
                |bench, values| bench.iter(|| reference_zmij_text(black_box(values), &mut bytes)),
            );
            group.bench_with_input(
                BenchmarkId::new("encode_f64s", size),
                &doubles,
                |bench, values| bench.iter(|| encode_f64s(black_box(values)).unwrap()),
            );
            for path in [FloatPath::Avx2, FloatPath::Scalar] {
                if path.is_available() {
                    group.bench_with_input(
                        BenchmarkId::new(format!("encode_f64s_{path:?}"), size),
                        &doubles,
                        |bench, values| {
                            bench.iter(|| encode_f64s_on(path, black_box(values)).unwrap())
                        },
                    );
                }
            }
            group.bench_with_input(
                BenchmarkId::new("reference_display_f32", size),
                &widened,
                |bench, values| bench.iter(|| reference_display_loop(black_box(values), &mut out)),
            );
            group.bench_with_input(
                BenchmarkId::new("encode_f32s", size),
                &singles,
                |bench, values| bench.iter(|| encode_f32s(black_box(values)).unwrap()),
            );
            group.bench_with_input(
                BenchmarkId::new("encode_buffer_f32", size),
                &single_bytes,
                |bench, memory| bench.iter(|| encode_buffer(black_box(memory), 0, layout).unwrap()),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench_floats);
criterion_main!(benches);

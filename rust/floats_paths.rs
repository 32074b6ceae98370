//! Choice among the ways to format floats: the vector paths where the CPU has them,
//! else one value at a time.

use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use super::{try_reserve, write_items_scalar, FloatError, MAX_ITEM_BYTES, WRITE_SLACK};

/// Ways to format floats, fastest first. Which ones run depends on the CPU.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatPath {
    /// Eight values at once, on x86-64 CPUs with AVX-512 F, BW, CD, DQ, IFMA and VBMI.
    Avx512,
    /// Four values at once, on x86-64 CPUs with AVX2.
    Avx2,
    /// One value at a time, on any CPU.
    Scalar,
}

impl FloatPath {
    /// Returns whether this CPU can take the path.
    #[must_use]
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => avx512::is_available(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => avx2::is_available(),
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx512 | Self::Avx2 => false,
            Self::Scalar => true,
        }
    }

    /// Returns the path `force` set, or else the fastest path this CPU can take.
    #[inline(always)]
    fn best() -> Self {
        match FORCED_PATH.load(Ordering::Relaxed) {
            FORCED_AVX512 => return Self::Avx512,
            FORCED_AVX2 => return Self::Avx2,
            FORCED_SCALAR => return Self::Scalar,
            _ => {}
        }
        if Self::Avx512.is_available() {
            Self::Avx512
        } else if Self::Avx2.is_available() {
            Self::Avx2
        } else {
            Self::Scalar
        }
    }

    /// Makes every later encoding in this process take `path`, or the fastest path
    /// again for `None`, so that tests and benchmarks can run the slower paths from
    /// Python. Returns false, changing nothing, if this CPU lacks the path.
    #[doc(hidden)]
    pub fn force(path: Option<Self>) -> bool {
        let code = match path {
            None => NOT_FORCED,
            Some(path) if !path.is_available() => return false,
            Some(Self::Avx512) => FORCED_AVX512,
            Some(Self::Avx2) => FORCED_AVX2,
            Some(Self::Scalar) => FORCED_SCALAR,
        };
        FORCED_PATH.store(code, Ordering::Relaxed);
        true
    }
}

/// The path that `FloatPath::force` set, as one of the codes below.
static FORCED_PATH: AtomicU8 = AtomicU8::new(NOT_FORCED);
const NOT_FORCED: u8 = 0;
const FORCED_AVX512: u8 = 1;
const FORCED_AVX2: u8 = 2;
const FORCED_SCALAR: u8 = 3;

/// Writes `values` as `write_items_scalar` does, a group at a time on the fastest
/// path this CPU has.
///
/// # Errors
/// As for `write_items_scalar`.
///
/// # Safety
/// As for `write_items_scalar`.
#[inline(always)]
pub(super) unsafe fn write_items(
    values: &[f64],
    first_index: usize,
    base: *mut u8,
    position: usize,
    after_first: bool,
) -> Result<usize, FloatError> {
    // SAFETY: forwarded from the caller, and `best` picks a path the CPU has.
    unsafe {
        write_items_on(
            FloatPath::best(),
            values,
            first_index,
            base,
            position,
            after_first,
        )
    }
}

/// Writes `values` as `write_items_scalar` does, on `path`.
///
/// # Errors
/// As for `write_items_scalar`.
///
/// # Safety
/// As for `write_items_scalar`, and `path.is_available()`.
#[inline(always)]
unsafe fn write_items_on(
    path: FloatPath,
    values: &[f64],
    first_index: usize,
    base: *mut u8,
    position: usize,
    after_first: bool,
) -> Result<usize, FloatError> {
    // SAFETY (each arm): forwarded from the caller, who checked the path.
    unsafe {
        match path {
            #[cfg(target_arch = "x86_64")]
            FloatPath::Avx512 => write_groups::<8>(
                avx512::write_group,
                values,
                first_index,
                base,
                position,
                after_first,
            ),
            #[cfg(target_arch = "x86_64")]
            FloatPath::Avx2 => write_groups::<4>(
                avx2::write_group,
                values,
                first_index,
                base,
                position,
                after_first,
            ),
            _ => write_items_scalar(values, first_index, base, position, after_first),
        }
    }
}

/// A vector path's writer of one group of `N` values, such as `avx512::write_group`.
#[cfg(target_arch = "x86_64")]
type GroupWriter<const N: usize> = unsafe fn(&[f64; N], *mut u8) -> Option<usize>;

/// Writes `values` as `write_items_scalar` does, `N` at a time with `write_group`.
/// The groups it leaves, and the values after the last full group, are written one
/// at a time.
///
/// # Errors
/// As for `write_items_scalar`.
///
/// # Safety
/// As for `write_items_scalar`, and the CPU must have what `write_group` needs.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn write_groups<const N: usize>(
    write_group: GroupWriter<N>,
    values: &[f64],
    first_index: usize,
    base: *mut u8,
    mut position: usize,
    after_first: bool,
) -> Result<usize, FloatError> {
    let mut done = 0;
    // SAFETY: each group writes at most its share of the caller's room, N items of
    // MAX_ITEM_BYTES, and GROUP_SLACK bytes past it, which is within WRITE_SLACK. The
    // scalar calls get the same share.
    unsafe {
        if values.len() >= N {
            // The vector paths write a comma before every item.
            if !after_first {
                position = write_items_scalar(&values[..1], first_index, base, position, false)?;
                done = 1;
            }
            while let Some(group) = values.get(done..done + N) {
                let group: &[f64; N] = group.try_into().expect("the range has N values");
                position = match write_group(group, base.add(position)) {
                    Some(len) => position + len,
                    None => write_items_scalar(group, first_index + done, base, position, true)?,
                };
                done += N;
            }
        }
        write_items_scalar(
            &values[done..],
            first_index + done,
            base,
            position,
            after_first || done > 0,
        )
    }
}

/// Encodes `values` as [`encode_f64s`](super::encode_f64s) does, on `path`, so that tests and benchmarks
/// can compare the paths. Returns `None` if this CPU lacks the path.
///
/// # Errors
/// As for [`encode_f64s`](super::encode_f64s).
#[doc(hidden)]
pub fn encode_f64s_on(path: FloatPath, values: &[f64]) -> Option<Result<Vec<u8>, FloatError>> {
    if !path.is_available() {
        return None;
    }
    let encode = || {
        let capacity = values
            .len()
            .checked_mul(MAX_ITEM_BYTES)
            .and_then(|bytes| bytes.checked_add(WRITE_SLACK + 2))
            .ok_or(FloatError::OutOfMemory { bytes: usize::MAX })?;
        let mut out = Vec::new();
        try_reserve(&mut out, capacity)?;
        out.push(b'[');
        // SAFETY: the capacity covers every item at its longest and the slack after
        // the last one, the length is set only over written bytes, and the CPU has
        // the path.
        unsafe {
            let position = write_items_on(path, values, 0, out.as_mut_ptr(), 1, false)?;
            out.set_len(position);
        }
        out.push(b']');
        Ok(out)
    };
    Some(encode())
}

/// Returns what the AVX-512 path writes for one group, or `None` if it leaves the
/// group to the scalar path or this CPU lacks the instructions.
#[cfg(test)]
pub(crate) fn simd_group(values: &[f64; 8]) -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    return group_output(FloatPath::Avx512, avx512::write_group, values);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = values;
        None
    }
}

/// Returns what the AVX2 path writes for one group, as `simd_group` does.
#[cfg(test)]
pub(crate) fn avx2_group(values: &[f64; 4]) -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    return group_output(FloatPath::Avx2, avx2::write_group, values);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = values;
        None
    }
}

/// Returns what `write_group`, the group writer of `path`, writes for `values`, or
/// `None` if it leaves the group to the scalar path or this CPU lacks `path`.
#[cfg(all(test, target_arch = "x86_64"))]
fn group_output<const N: usize>(
    path: FloatPath,
    write_group: GroupWriter<N>,
    values: &[f64; N],
) -> Option<Vec<u8>> {
    if !path.is_available() {
        return None;
    }
    let mut room = vec![0u8; N * MAX_ITEM_BYTES + WRITE_SLACK];
    // SAFETY: `room` is as large as a group's share and slack, and the CPU has the
    // path that `write_group` belongs to.
    let len = unsafe { write_group(values, room.as_mut_ptr()) }?;
    room.truncate(len);
    Some(room)
}

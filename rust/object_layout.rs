//! Direct reads of list, tuple and int objects on the CPython versions whose memory
//! layout is known.
//!
//! Through the limited API every list item costs two function calls
//! (`PyList_GetItem`, `PyLong_AsLongLongAndOverflow`), about as much as formatting the
//! number. The layouts read here have been stable from CPython 3.11 to 3.14 on 64-bit
//! builds with 30-bit digits. Any other interpreter, version or build gets `None`
//! from [`layout`], and the callers use the API instead.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

/// Byte offset of the field after `PyObject_VAR_HEAD`: `ob_item` of a list, the
/// first item of a tuple, the first digit of an int (after `ob_size` or `lv_tag`).
const AFTER_VAR_HEAD: usize = 24;
/// Byte offset of `ob_size` (3.11) or `lv_tag` (3.12 and later) in an int.
const SIZE_OR_TAG: usize = 16;

/// Memory layout of the sign and digit count of an int object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntLayout {
    /// CPython 3.11: `ob_size` is the digit count, negative for negative numbers.
    SignedSize,
    /// CPython 3.12 to 3.14: `lv_tag` contains the digit count above 3 flag bits, and
    /// its low 2 bits are 0 for positive, 1 for zero and 2 for negative numbers.
    Tagged,
}

static LAYOUT: OnceLock<Option<IntLayout>> = OnceLock::new();

/// Works out the layout of this interpreter once, when the module is imported.
pub(crate) fn init(py: Python<'_>) -> PyResult<()> {
    let layout = detect(py)?;
    let _ = LAYOUT.set(layout);
    Ok(())
}

fn detect(py: Python<'_>) -> PyResult<Option<IntLayout>> {
    if cfg!(not(target_pointer_width = "64")) {
        return Ok(None);
    }
    let sys = py.import("sys")?;
    let implementation: String = sys.getattr("implementation")?.getattr("name")?.extract()?;
    let version_info = sys.getattr("version_info")?;
    let major: u32 = version_info.get_item(0)?.extract()?;
    let minor: u32 = version_info.get_item(1)?.extract()?;
    let int_info = sys.getattr("int_info")?;
    let bits_per_digit: u32 = int_info.getattr("bits_per_digit")?.extract()?;
    let sizeof_digit: u32 = int_info.getattr("sizeof_digit")?.extract()?;
    let gil_disabled = py
        .import("sysconfig")?
        .call_method1("get_config_var", ("Py_GIL_DISABLED",))?
        .is_truthy()?;
    if implementation != "cpython" || bits_per_digit != 30 || sizeof_digit != 4 || gil_disabled {
        return Ok(None);
    }
    Ok(match (major, minor) {
        (3, 11) => Some(IntLayout::SignedSize),
        (3, 12..=14) => Some(IntLayout::Tagged),
        _ => None,
    })
}

/// Returns the layout to read objects with, or `None` to use the API.
#[inline(always)]
pub(crate) fn layout() -> Option<IntLayout> {
    LAYOUT.get().copied().flatten()
}

/// Returns the address of the first item pointer of an exact list or tuple.
///
/// # Safety
/// `container` must be a live exact list (`is_list`) or exact tuple, `layout()` must
/// have returned `Some`, and the GIL must be held. The address stays valid only until
/// Python code runs, which may resize a list.
#[inline(always)]
pub(crate) unsafe fn items(
    container: *mut ffi::PyObject,
    is_list: bool,
) -> *const *mut ffi::PyObject {
    let field = container.cast::<u8>().wrapping_add(AFTER_VAR_HEAD);
    if is_list {
        // SAFETY: a list stores its `ob_item` pointer right after the variable header.
        unsafe { field.cast::<*const *mut ffi::PyObject>().read() }
    } else {
        // A tuple stores its items inline right after the variable header.
        field.cast::<*mut ffi::PyObject>()
    }
}

/// Returns the value of an exact int of at most one 30-bit digit, or `None` for a
/// larger one.
///
/// # Safety
/// `item` must be a live object of exact type int, `layout` must come from
/// [`layout`], and the GIL must be held.
#[inline(always)]
pub(crate) unsafe fn compact_value(item: *mut ffi::PyObject, layout: IntLayout) -> Option<i64> {
    let base = item.cast::<u8>();
    // SAFETY: every int object has the size or tag word and room for one digit, which
    // is 0 for zero (in 3.11 zero has no digit, so it is not read there).
    unsafe {
        let word = base.add(SIZE_OR_TAG).cast::<isize>().read();
        match layout {
            IntLayout::SignedSize => match word {
                0 => Some(0),
                1 => Some(i64::from(base.add(AFTER_VAR_HEAD).cast::<u32>().read())),
                -1 => Some(-i64::from(base.add(AFTER_VAR_HEAD).cast::<u32>().read())),
                _ => None,
            },
            IntLayout::Tagged => {
                let tag = word as usize;
                if tag >> 3 > 1 {
                    return None;
                }
                let digit = i64::from(base.add(AFTER_VAR_HEAD).cast::<u32>().read());
                Some((1 - (tag & 3) as i64) * digit)
            }
        }
    }
}

impl IntLayout {
    /// Returns the size or tag word of a positive int of one digit, the form of almost
    /// every token ID. One compare with it separates such ints from all others.
    #[inline(always)]
    pub(crate) fn positive_one_digit_word(self) -> isize {
        match self {
            Self::SignedSize => 1,
            Self::Tagged => 1 << 3,
        }
    }
}

/// Returns the digit of `item` if it is a positive int of one digit, else `None`.
///
/// # Safety
/// As for [`compact_value`], and `word` must be `layout.positive_one_digit_word()`.
#[inline(always)]
pub(crate) unsafe fn positive_one_digit(item: *mut ffi::PyObject, word: isize) -> Option<u32> {
    let base = item.cast::<u8>();
    // SAFETY: every int object has the size or tag word, and an int whose word marks
    // one digit has that digit.
    unsafe {
        if base.add(SIZE_OR_TAG).cast::<isize>().read() != word {
            return None;
        }
        Some(base.add(AFTER_VAR_HEAD).cast::<u32>().read())
    }
}

/// Byte offset of `ob_fval` in a float object, after `PyObject_HEAD`.
const FLOAT_VALUE: usize = 16;

/// Reads the value of an exact float object.
///
/// # Safety
/// `item` must be a live exact float, the GIL must be held, and [`layout`] must have
/// returned `Some`, which means the object layout read here is the interpreter's.
#[inline(always)]
pub(crate) unsafe fn float_value(item: *mut ffi::PyObject) -> f64 {
    // SAFETY: a float object is `PyObject_HEAD` followed by its double.
    unsafe { item.cast::<u8>().add(FLOAT_VALUE).cast::<f64>().read() }
}

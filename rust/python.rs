//! PyO3 glue: turns Python inputs into calls of the plain Rust encoder.
//!
//! Lists, tuples and other sequences are read item by item with the GIL held,
//! because reading a Python object needs it. Buffers and ranges are encoded with
//! the GIL released.

use std::ffi::{c_int, CStr};

use pyo3::exceptions::{
    PyException, PyMemoryError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::encode::{self, ArrayWriter, ByteOrder, ElementType, EncodeError, Layout, Output};
use crate::object_layout;

/// Maximum number of characters of a value's `repr` quoted in an error message.
const MAX_REPR_CHARS: usize = 60;

const ACCEPTED: &str =
    "a list, tuple or range of ints, a sequence of ints, or a 1-D buffer of integers";

/// Converts an encoder error into the Python exception that describes it.
fn to_py_error(error: EncodeError) -> PyErr {
    match error {
        EncodeError::OutOfMemory { .. } => PyMemoryError::new_err(error.to_string()),
        EncodeError::OutOfBounds { .. }
        | EncodeError::RangeOverflow
        | EncodeError::InvalidDecimal => PyValueError::new_err(error.to_string()),
    }
}

/// Returns `repr(value)` cut to a length that keeps error messages readable.
pub(crate) fn short_repr(value: &Bound<'_, PyAny>) -> String {
    let text = value
        .repr()
        .map_or_else(|_| "<repr failed>".to_owned(), |repr| repr.to_string());
    if text.chars().count() <= MAX_REPR_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_REPR_CHARS).collect();
    format!("{cut}...")
}

pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "<unknown>".to_owned(), |name| name.to_string())
}

fn invalid_token(index: usize, item: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "invalid token at index {index}: expected an int, got {} {}",
        type_name(item),
        short_repr(item)
    ))
}

/// Appends one Python int (exact type) to `writer`.
fn push_exact_int<O: Output>(
    writer: &mut ArrayWriter<O>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let mut overflow: c_int = 0;
    // SAFETY: `value` is a live int object and the GIL is held.
    let small = unsafe { ffi::PyLong_AsLongLongAndOverflow(value.as_ptr(), &raw mut overflow) };
    if overflow == 0 {
        if small == -1 {
            if let Some(error) = PyErr::take(value.py()) {
                return Err(error);
            }
        }
        return writer.push_i64(small).map_err(to_py_error);
    }
    if overflow > 0 {
        if let Ok(large) = value.extract::<u64>() {
            return writer.push_u64(large).map_err(to_py_error);
        }
    }
    // Wider than 64 bits: Python's own digits, as `json.dumps` writes them. `str`
    // raises ValueError past the interpreter's digit limit, as `json.dumps` does.
    let digits = value.str()?;
    writer
        .push_decimal(digits.to_str()?.as_bytes())
        .map_err(to_py_error)
}

/// Appends one sequence item to `writer`, converting it as `operator.index` does.
fn push_item<O: Output>(
    writer: &mut ArrayWriter<O>,
    index: usize,
    item: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let raw = item.as_ptr();
    // SAFETY: `raw` is a live object and the GIL is held for both checks.
    if unsafe { ffi::PyLong_CheckExact(raw) } != 0 {
        return push_exact_int(writer, item);
    }
    // SAFETY: as above.
    if unsafe { ffi::PyIndex_Check(raw) } == 0 {
        return Err(invalid_token(index, item));
    }
    // `__index__` of an int subclass, bool, IntEnum or numpy integer. Since Python 3.10
    // the result is always an exact int. An error it raises is passed on unchanged.
    // SAFETY: `raw` is live, the GIL is held, and a null result means a Python error is set.
    let converted = unsafe { Bound::from_owned_ptr_or_err(item.py(), ffi::PyNumber_Index(raw))? };
    push_exact_int(writer, &converted)
}

/// Largest item count taken from a `__len__` to size the output up front.
const MAX_LENGTH_HINT: usize = 1 << 20;

/// Number of small ints collected before they are formatted in one tight loop, away
/// from the Python API calls that read them. Blocks of 64 let the processor overlap
/// the reads of one block with the formatting of the last. On 8K-token lists they
/// took 2.11 ns per token, against 2.30 for blocks of 256 and 2.47 for blocks of 16
/// (benches/peers.py, 2 vCPU AMD EPYC).
const PENDING: usize = 64;

/// Small ints read from a list or tuple and not yet written.
struct PendingInts {
    values: [i64; PENDING],
    count: usize,
}

impl PendingInts {
    fn new() -> Self {
        Self {
            values: [0; PENDING],
            count: 0,
        }
    }

    /// Reads `item`, an exact int, and returns false if it does not fit in an `i64`.
    /// The caller flushes when the block is full.
    #[inline(always)]
    fn try_push(&mut self, item: *mut ffi::PyObject) -> bool {
        let mut overflow: c_int = 0;
        // SAFETY: `item` is a live int and the GIL is held. Converting an exact int
        // runs no Python code, and -1 with no overflow is a valid value because the
        // conversion of an int cannot fail for any other reason.
        let value = unsafe { ffi::PyLong_AsLongLongAndOverflow(item, &raw mut overflow) };
        if overflow != 0 {
            return false;
        }
        self.values[self.count] = value;
        self.count += 1;
        true
    }

    /// Adds a value read without the API. The caller flushes when the block is full.
    #[inline(always)]
    fn push_value(&mut self, value: i64) {
        self.values[self.count] = value;
        self.count += 1;
    }

    fn is_full(&self) -> bool {
        self.count == PENDING
    }

    fn flush<O: Output>(&mut self, writer: &mut ArrayWriter<O>) -> PyResult<()> {
        writer
            .extend_i64(&self.values[..self.count])
            .map_err(to_py_error)?;
        self.count = 0;
        Ok(())
    }
}

/// Encodes an exact list or tuple, straight into a bytes object where that is
/// possible, so that the output is not copied and no second copy of it exists.
fn encode_list_or_tuple<'py>(tokens: &Bound<'py, PyAny>, is_list: bool) -> PyResult<Encoded<'py>> {
    let py = tokens.py();
    // SAFETY: the GIL is held and `tokens` is an exact list or tuple.
    let size = unsafe {
        if is_list {
            ffi::PyList_Size(tokens.as_ptr())
        } else {
            ffi::PyTuple_Size(tokens.as_ptr())
        }
    };
    #[cfg(unix)]
    if object_layout::layout().is_some() {
        // Room for 7 digits and a comma per item (every token ID in use is below
        // 10^7), the brackets and the store slack: no growth for token IDs.
        let capacity = (size.max(0) as usize)
            .checked_mul(8)
            .and_then(|bytes| bytes.checked_add(2 + encode::STORE_SLACK));
        if let Some(out) = capacity.and_then(|capacity| BytesOutput::with_capacity(py, capacity)) {
            let writer = ArrayWriter::new_in(out).map_err(to_py_error)?;
            let out = fill_from_list_or_tuple(tokens, is_list, writer, false)?;
            return out.into_bytes(py).map(Encoded::Bytes);
        }
    }
    let writer = ArrayWriter::with_capacity(size.max(0) as usize);
    fill_from_list_or_tuple(tokens, is_list, writer, false).map(Encoded::Owned)
}

/// Writes the items of an exact list or tuple into `writer` and closes the array.
/// The size of a list is read again after any call that can run Python code, so a
/// list changed by an item's `__index__` behaves as under Python's list iterator.
/// Tuples cannot change. With `exact_ints_only`, an item that is not an exact int
/// raises TypeError instead, so that no Python code runs.
pub(crate) fn fill_from_list_or_tuple<O: Output>(
    tokens: &Bound<'_, PyAny>,
    is_list: bool,
    mut writer: ArrayWriter<O>,
    exact_ints_only: bool,
) -> PyResult<O> {
    let py = tokens.py();
    let raw = tokens.as_ptr();
    // SAFETY (both calls): `raw` is an exact list or tuple and the GIL is held.
    let read_size = || unsafe {
        if is_list {
            ffi::PyList_Size(raw)
        } else {
            ffi::PyTuple_Size(raw)
        }
    };
    let direct = object_layout::layout();
    // SAFETY: `raw` is an exact list or tuple, the GIL is held, and the address is read
    // again after every call that can run Python code.
    let read_items = || direct.map(|_| unsafe { object_layout::items(raw, is_list) });

    let mut size = read_size();
    let mut items = read_items();
    let mut pending = PendingInts::new();
    let mut index: isize = 0;
    while index < size {
        if let (Some(items), Some(layout)) = (items, direct) {
            let one_digit_word = layout.positive_one_digit_word();
            // The common case in a loop of its own: exact ints of one digit, read
            // without the API. It stops at anything else, which the code below takes.
            loop {
                let end = size.min(index + (PENDING - pending.count) as isize);
                let start = index;
                // A pointer of its own, so the compiler need not reload the count
                // after each store into the block, nor check bounds.
                let block = pending.values[pending.count..].as_mut_ptr();
                while index < end {
                    // SAFETY: as for `item` below.
                    let item = unsafe { *items.offset(index) };
                    // SAFETY: `item` is live and the GIL is held; `compact_value` is
                    // given an exact int and the layout from `layout()`.
                    let value = unsafe {
                        if ffi::Py_TYPE(item) != &raw mut ffi::PyLong_Type {
                            break;
                        }
                        // Positive one-digit ints first: one compare instead of the
                        // three cases of `compact_value` saved about 5% per token ID
                        // on 8K lists (benches/peers.py, 2 vCPU AMD EPYC).
                        match object_layout::positive_one_digit(item, one_digit_word) {
                            Some(digit) => Some(i64::from(digit)),
                            None => object_layout::compact_value(item, layout),
                        }
                    };
                    let Some(value) = value else { break };
                    // SAFETY: `index - start < end - start <= PENDING - count`, the
                    // length of the block.
                    unsafe { *block.add((index - start) as usize) = value };
                    index += 1;
                }
                pending.count += (index - start) as usize;
                if !pending.is_full() {
                    break;
                }
                pending.flush(&mut writer)?;
            }
            if index >= size {
                break;
            }
        }
        // SAFETY: `index < size` and nothing has run Python code since `size` and
        // `items` were read, so the item exists. The reference is borrowed: the
        // container keeps the item alive as long as no Python code runs.
        let item = unsafe {
            match items {
                Some(items) => *items.offset(index),
                None if is_list => ffi::PyList_GetItem(raw, index),
                None => ffi::PyTuple_GetItem(raw, index),
            }
        };
        // SAFETY: `item` is live and the GIL is held.
        if unsafe { ffi::PyLong_CheckExact(item) } != 0 {
            // SAFETY: `item` is an exact int and `direct` came from `layout()`.
            let compact =
                direct.and_then(|layout| unsafe { object_layout::compact_value(item, layout) });
            let pushed = match compact {
                Some(value) => {
                    pending.push_value(value);
                    true
                }
                None => pending.try_push(item),
            };
            if pushed {
                if pending.is_full() {
                    pending.flush(&mut writer)?;
                }
                index += 1;
                continue;
            }
        }

        // Anything else: bool, int subclasses, other __index__ objects, wide ints.
        // SAFETY: `item` is live and the GIL is held.
        if exact_ints_only && unsafe { ffi::PyLong_CheckExact(item) } == 0 {
            return Err(PyTypeError::new_err("a token is not an exact int"));
        }
        pending.flush(&mut writer)?;
        // SAFETY: as above. The strong reference keeps the item alive while its
        // `__index__` runs, which may change the list.
        let item = unsafe { Bound::from_borrowed_ptr(py, item) };
        push_item(&mut writer, index as usize, &item)?;
        size = read_size();
        items = read_items();
        index += 1;
    }
    pending.flush(&mut writer)?;
    writer.finish().map_err(to_py_error)
}

/// Encodes any other iterable sequence through its iterator.
fn encode_iterable(sequence: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    // The length is only a hint: `__len__` may claim anything, so it is also capped,
    // and an Exception from it is ignored as `operator.length_hint` does. Others, such
    // as KeyboardInterrupt, propagate.
    let hint = match sequence.len() {
        Ok(len) => len.min(MAX_LENGTH_HINT),
        Err(error) if error.is_instance_of::<PyException>(sequence.py()) => 0,
        Err(error) => return Err(error),
    };
    let mut writer = ArrayWriter::with_capacity(hint);
    for (index, item) in sequence.try_iter()?.enumerate() {
        push_item(&mut writer, index, &item?)?;
    }
    writer.finish().map_err(to_py_error)
}

/// Encodes a `range` without creating its items, if its values fit in 64 bits.
fn encode_range(py: Python<'_>, range: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    // A range longer than sys.maxsize, whose len() overflows, has no output that fits
    // in memory (at least two bytes per value).
    let len = match range.len() {
        Ok(len) => len,
        Err(error) if error.is_instance_of::<PyOverflowError>(py) => {
            return Err(PyMemoryError::new_err(
                "cannot allocate the JSON output of a range longer than sys.maxsize",
            ));
        }
        Err(error) => return Err(error),
    };
    // Fail now, not after iterating for minutes, if even the smallest output of this
    // many values cannot be allocated.
    encode::check_output_fits(len).map_err(to_py_error)?;
    let start = range.getattr("start")?.extract::<i64>();
    let step = range.getattr("step")?.extract::<i64>();
    let (Ok(start), Ok(step)) = (start, step) else {
        return Ok(None);
    };
    match py.detach(|| encode::encode_range(start, step, len)) {
        Ok(encoded) => Ok(Some(encoded)),
        // Values beyond 64 bits: the caller iterates the range instead.
        Err(EncodeError::RangeOverflow) => Ok(None),
        Err(error) => Err(to_py_error(error)),
    }
}

/// An exported buffer, released when dropped.
pub(crate) struct BufferView {
    pub(crate) view: ffi::Py_buffer,
}

impl BufferView {
    pub(crate) fn get(object: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut view = ffi::Py_buffer::new();
        // SAFETY: the GIL is held and `view` is writable. On success the exporter
        // keeps the memory alive and in place until `PyBuffer_Release`.
        let status = unsafe {
            ffi::PyObject_GetBuffer(object.as_ptr(), &raw mut view, ffi::PyBUF_RECORDS_RO)
        };
        if status != 0 {
            return Err(PyErr::fetch(object.py()));
        }
        Ok(Self { view })
    }
}

impl Drop for BufferView {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful `PyObject_GetBuffer`. Every
        // `BufferView` is dropped while the thread holds the GIL, because it is
        // created and used only in functions that take a `Python` token.
        unsafe { ffi::PyBuffer_Release(&raw mut self.view) };
    }
}

/// Parses a struct-module format string of one integer item into its signedness and
/// byte order. The item size comes from the buffer's `itemsize`, because native
/// codes such as `l` differ in size between platforms.
fn parse_format(format: &str) -> Result<(bool, ByteOrder), String> {
    let (order, code) = match format.as_bytes() {
        [code] => (ByteOrder::NATIVE, *code),
        [b'@' | b'=', code] => (ByteOrder::NATIVE, *code),
        [b'<', code] => (ByteOrder::Little, *code),
        [b'>' | b'!', code] => (ByteOrder::Big, *code),
        _ => return Err(format!("unsupported buffer format {format:?}")),
    };
    let signed = match code {
        b'b' | b'h' | b'i' | b'l' | b'q' | b'n' => true,
        b'B' | b'H' | b'I' | b'L' | b'Q' | b'N' => false,
        b'?' => return Err(format!("unsupported buffer format {format:?} (bool)")),
        b'e' | b'f' | b'd' | b'g' => {
            return Err(format!(
                "unsupported buffer format {format:?} (floating point)"
            ))
        }
        _ => return Err(format!("unsupported buffer format {format:?}")),
    };
    Ok((signed, order))
}

/// Raw pointer to buffer memory that may cross into code running without the GIL.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *const u8);

// SAFETY: the pointer is only read, and only while the `BufferView` that keeps the
// memory exported is alive on the calling thread (see `encode_buffer`).
unsafe impl Send for SendPtr {}

pub(crate) fn dimension_error(view: &ffi::Py_buffer, items: &str) -> PyErr {
    let shape = if view.shape.is_null() {
        Vec::new()
    } else {
        // SAFETY: a filled view with a shape has `ndim` shape entries.
        unsafe { std::slice::from_raw_parts(view.shape, view.ndim.max(0) as usize) }.to_vec()
    };
    let shape: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let shape = match shape.as_slice() {
        [single] => format!("({single},)"),
        _ => format!("({})", shape.join(", ")),
    };
    PyValueError::new_err(format!(
        "expected a 1-D buffer of {items}, got a {}-D buffer of shape {shape}",
        view.ndim
    ))
}

/// Returns the struct-module format of a view's items ("B" when it gives none).
pub(crate) fn view_format(view: &ffi::Py_buffer) -> String {
    if view.format.is_null() {
        return "B".to_owned();
    }
    // SAFETY: the exporter fills `format` with a NUL-terminated string that lives as
    // long as the view.
    unsafe { CStr::from_ptr(view.format) }
        .to_string_lossy()
        .into_owned()
}

/// Returns the item count and the stride in bytes of a 1-D view.
pub(crate) fn view_len_and_stride(view: &ffi::Py_buffer) -> (usize, isize) {
    debug_assert_eq!(view.ndim, 1);
    // SAFETY: `ndim == 1` and PyBUF_RECORDS_RO asked for shape and strides, so both
    // arrays have one entry (CPython fills `strides` for every exporter at this level).
    let len = usize::try_from(unsafe { *view.shape }).unwrap_or(0);
    let stride = if view.strides.is_null() {
        view.itemsize
    } else {
        // SAFETY: as above.
        unsafe { *view.strides }
    };
    (len, stride)
}

/// Reads the layout of an exported buffer, or returns `None` for a buffer of Python
/// objects (numpy's object arrays), whose items must go through `operator.index`.
fn layout_of(view: &ffi::Py_buffer) -> PyResult<Option<Layout>> {
    if view.ndim != 1 {
        return Err(dimension_error(view, "token IDs"));
    }
    let format = view_format(view);
    if format == "O" {
        return Ok(None);
    }
    let (signed, order) = parse_format(&format)
        .map_err(|reason| PyTypeError::new_err(format!("{reason}: expected integer items")))?;
    let itemsize = usize::try_from(view.itemsize).unwrap_or(0);
    let element = ElementType::from_parts(signed, itemsize).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "unsupported item size {itemsize} for buffer format {format:?}"
        ))
    })?;
    let (len, stride) = view_len_and_stride(view);
    Ok(Some(Layout {
        element,
        order,
        len,
        stride,
    }))
}

/// Encodes an exported buffer with the GIL released, or returns `None` for a buffer
/// of Python objects.
fn encode_buffer<'py>(py: Python<'py>, buffer: BufferView) -> PyResult<Option<Encoded<'py>>> {
    let Some(layout) = layout_of(&buffer.view)? else {
        return Ok(None);
    };
    #[cfg(unix)]
    if let (Some(bound), Some(_)) = (encode::max_output_len(layout), object_layout::layout()) {
        // Small outputs get a bytes object sized for the widest output, or for 7
        // digits per element (every token ID in use is below 10^7). Room beyond
        // glibc's mmap threshold would be mapped afresh on every call (the shrunk
        // object the previous call freed is smaller, so the threshold never rises
        // to it), and those page faults made 32K int32 token IDs 1.6x slower. So
        // larger outputs are measured first and get an object of their exact size:
        // the same size on every call, which glibc then serves without new
        // mappings, and no second copy of the output exists at any time.
        let estimate = layout
            .len
            .checked_mul(8)
            .and_then(|bytes| bytes.checked_add(2 + encode::STORE_SLACK))
            .filter(|&bytes| bytes <= IN_PLACE_MAX_BYTES);
        // The first pass takes time in proportion to the length, so a length whose
        // smallest output cannot be had fails at once instead (huge broadcast views).
        if layout.len > MEASURE_CHECK_LEN {
            encode::check_output_fits(layout.len).map_err(to_py_error)?;
        }
        let rooms = if bound <= IN_PLACE_MAX_BYTES {
            [Some(Room::Widest(bound)), None]
        } else if let Some(estimate) = estimate {
            [Some(Room::AtMost(estimate)), Some(Room::Measured)]
        } else {
            [Some(Room::Measured), None]
        };
        for room in rooms.into_iter().flatten() {
            if let Some(encoded) = encode_buffer_in_place(py, &buffer, layout, room)? {
                return Ok(Some(encoded));
            }
        }
    }
    let base = SendPtr(buffer.view.buf.cast::<u8>().cast_const());
    // SAFETY: the exporter promises that every element of the 1-D view is readable
    // until `PyBuffer_Release`, which runs when `buffer` drops after this call.
    // Writers on other threads may change values meanwhile, which `encode_raw`
    // tolerates: it never reads outside the elements of the layout.
    let encoded = py.detach(move || {
        let base = base;
        unsafe { encode::encode_raw(base.0, layout) }
    });
    drop(buffer);
    encoded
        .map(|bytes| Some(Encoded::Owned(bytes)))
        .map_err(to_py_error)
}

/// Lengths above which a buffer's smallest possible output is allocated once as a
/// check before the measuring pass. Below it the pass takes under about 0.1 s.
#[cfg(unix)]
const MEASURE_CHECK_LEN: usize = 1 << 26;

/// Largest output bound written in place: glibc's default mmap threshold.
#[cfg(unix)]
const IN_PLACE_MAX_BYTES: usize = 128 * 1024;

#[cfg(unix)]
extern "C" {
    /// Resizes a bytes object that nothing else refers to yet. It is in CPython's
    /// documented C API but not in the limited API, so pyo3-ffi leaves it out of abi3
    /// builds. The interpreter exports it on every Unix build, where extension
    /// symbols resolve at load time. Windows links abi3 modules against python3.dll,
    /// which lacks it, so Windows keeps the copying path.
    fn _PyBytes_Resize(bytes: *mut *mut ffi::PyObject, new_size: ffi::Py_ssize_t) -> c_int;
}

/// Mutable pointer into a new bytes object that no other code can see yet.
#[cfg(unix)]
struct SendMutPtr(*mut u8);

// SAFETY: the bytes object is created by this thread and not shared before the write
// ends, so the write from the thread that runs without the GIL is the only access.
#[cfg(unix)]
unsafe impl Send for SendMutPtr {}

/// Output that is a Python bytes object from the start, grown and finally shrunk in
/// place. Every method needs the GIL, which the list path holds throughout.
#[cfg(unix)]
pub(crate) struct BytesOutput {
    /// Owned reference; null only after a failed resize, which freed the object.
    object: *mut ffi::PyObject,
    /// The object's data, read again after every resize, which may move it.
    data: *mut u8,
    len: usize,
    capacity: usize,
}

#[cfg(unix)]
impl BytesOutput {
    /// Returns an empty output with room for `capacity` bytes, or `None` if the
    /// object cannot be allocated (the caller then uses a vector, which reports its
    /// own error).
    pub(crate) fn with_capacity(py: Python<'_>, capacity: usize) -> Option<Self> {
        let size = ffi::Py_ssize_t::try_from(capacity).ok()?;
        // SAFETY: a null source requests an uninitialized object of `size` bytes.
        let object = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
        if object.is_null() {
            drop(PyErr::take(py));
            return None;
        }
        Some(Self {
            object,
            // SAFETY: `object` is a live bytes object.
            data: unsafe { ffi::PyBytes_AsString(object).cast::<u8>() },
            len: 0,
            capacity,
        })
    }

    /// Resizes the object to `size` bytes.
    fn resize(&mut self, size: usize) -> Result<(), EncodeError> {
        let out_of_memory = EncodeError::OutOfMemory { bytes: size };
        let Ok(new_size) = ffi::Py_ssize_t::try_from(size) else {
            return Err(out_of_memory);
        };
        if self.object.is_null() {
            return Err(out_of_memory);
        }
        // SAFETY: `object` is the only reference to a bytes object, as the function
        // requires. On failure it frees the object, sets the pointer to null and sets
        // a Python error, which the caller reports as its own MemoryError instead.
        if unsafe { _PyBytes_Resize(&raw mut self.object, new_size) } != 0 {
            // SAFETY: the GIL is held.
            drop(PyErr::take(unsafe { Python::assume_attached() }));
            return Err(out_of_memory);
        }
        self.capacity = size;
        // SAFETY: the resize succeeded, so `object` is a live bytes object.
        self.data = unsafe { ffi::PyBytes_AsString(self.object).cast::<u8>() };
        Ok(())
    }

    /// Shrinks the object to the bytes written and returns it.
    pub(crate) fn into_bytes(mut self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        self.resize(self.len).map_err(to_py_error)?;
        let object = std::mem::replace(&mut self.object, std::ptr::null_mut());
        // SAFETY: `object` is the owned reference to the resized bytes object.
        Ok(unsafe { Bound::from_owned_ptr(py, object) })
    }
}

// SAFETY: `reserve` resizes the object so that its data has `len + additional` bytes,
// and only `reserve` and `into_bytes` move the data.
#[cfg(unix)]
unsafe impl Output for BytesOutput {
    fn len(&self) -> usize {
        self.len
    }

    fn spare(&self) -> usize {
        self.capacity - self.len
    }

    fn reserve(&mut self, additional: usize) -> Result<(), EncodeError> {
        if additional <= self.spare() {
            return Ok(());
        }
        let needed = self
            .len
            .checked_add(additional)
            .ok_or(EncodeError::OutOfMemory { bytes: usize::MAX })?;
        self.resize(needed.max(self.capacity.saturating_mul(2)))
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        // A failed `reserve` returned an error before any write could ask for it.
        self.data
    }

    unsafe fn set_len(&mut self, len: usize) {
        self.len = len;
    }
}

#[cfg(unix)]
impl Drop for BytesOutput {
    fn drop(&mut self) {
        if !self.object.is_null() {
            // SAFETY: the owned reference, released with the GIL held.
            unsafe { ffi::Py_DECREF(self.object) };
        }
    }
}

/// How much room `encode_buffer_in_place` gives the output.
#[cfg(unix)]
#[derive(Clone, Copy)]
enum Room {
    /// This many bytes, enough for the widest output (`max_output_len`).
    Widest(usize),
    /// This many bytes, which the output may not fit.
    AtMost(usize),
    /// The exact length of the output, measured in a first pass, plus the store slack.
    Measured,
}

/// Encodes a buffer straight into a bytes object, then shrinks that in place, so
/// nothing is copied and the peak memory stays near the output size. Returns `None`
/// if the object cannot be allocated or the output does not fit the room (with
/// `Room::Measured`, only if other threads changed the values between the passes).
#[cfg(unix)]
fn encode_buffer_in_place<'py>(
    py: Python<'py>,
    buffer: &BufferView,
    layout: Layout,
    room: Room,
) -> PyResult<Option<Encoded<'py>>> {
    let base = SendPtr(buffer.view.buf.cast::<u8>().cast_const());
    let capacity = match room {
        Room::Widest(bytes) | Room::AtMost(bytes) => bytes,
        // SAFETY: as in `encode_buffer` for the input, whose view the caller keeps
        // alive.
        Room::Measured => match py
            .detach(move || {
                let base = base;
                unsafe { encode::output_len(base.0, layout) }
            })
            .checked_add(encode::STORE_SLACK)
        {
            Some(capacity) if isize::try_from(capacity).is_ok() => capacity,
            _ => return Ok(None),
        },
    };
    // SAFETY: a null source requests an uninitialized object of `capacity` bytes,
    // and `capacity` fits in an isize (checked by `max_output_len`, by the caller's
    // limit or above).
    let bytes =
        unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), capacity as ffi::Py_ssize_t) };
    if bytes.is_null() {
        // Only MemoryError can happen here, and the caller's fallback reports its own.
        drop(PyErr::take(py));
        return Ok(None);
    }
    // SAFETY: `bytes` is a new bytes object whose data has `capacity` writable bytes.
    let out = SendMutPtr(unsafe { ffi::PyBytes_AsString(bytes) }.cast::<u8>());
    // SAFETY: as in `encode_buffer` for the input. `Room::Widest` is the room that
    // `encode_raw_into` needs whatever values other threads write meanwhile; with
    // any other, `encode_raw_into_bounded` checks the room as it goes.
    let written = py.detach(move || {
        let (base, out) = (base, out);
        unsafe {
            match room {
                Room::Widest(_) => Some(encode::encode_raw_into(base.0, layout, out.0)),
                Room::AtMost(_) | Room::Measured => {
                    encode::encode_raw_into_bounded(base.0, layout, out.0, capacity)
                }
            }
        }
    });
    let Some(written) = written else {
        // SAFETY: `bytes` is the new reference this function owns.
        unsafe { ffi::Py_DECREF(bytes) };
        return Ok(None);
    };
    let mut resized = bytes;
    // SAFETY: `resized` is the only reference to a bytes object, as the function
    // requires, and `written <= capacity`. On failure it frees the object, sets the
    // pointer to null and sets a Python error.
    if unsafe { _PyBytes_Resize(&raw mut resized, written as ffi::Py_ssize_t) } != 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `resized` is a new reference to the shrunk bytes object.
    Ok(Some(Encoded::Bytes(unsafe {
        Bound::from_owned_ptr(py, resized)
    })))
}

/// Output of an encoder: bytes to copy into a Python object, or the object itself.
enum Encoded<'py> {
    Owned(Vec<u8>),
    Bytes(Bound<'py, PyAny>),
}

impl<'py> Encoded<'py> {
    fn into_bytes(self, py: Python<'py>) -> Bound<'py, PyAny> {
        match self {
            Self::Owned(bytes) => PyBytes::new(py, &bytes).into_any(),
            Self::Bytes(object) => object,
        }
    }
}

/// Raises TypeError for a numpy masked array with masked values. Its buffer still contains
/// a number in every masked slot, which must not be sent as a token ID.
pub(crate) fn reject_masked_values(tokens: &Bound<'_, PyAny>) -> PyResult<()> {
    // A class may set `__module__` to anything; one that is not a string is not numpy's.
    let module = tokens.get_type().module().ok();
    let in_numpy_ma = module
        .as_ref()
        .and_then(|name| name.to_str().ok())
        .is_some_and(|name| name.starts_with("numpy.ma"));
    if !in_numpy_ma || !tokens.hasattr("count")? {
        return Ok(());
    }
    let size: usize = tokens.getattr("size")?.extract()?;
    let unmasked: usize = tokens.call_method0("count")?.extract()?;
    if unmasked == size {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!(
        "cannot encode a masked array with masked entries ({} of {size}): fill them with \
         tokens.filled(value) or drop them with tokens.compressed() first",
        size - unmasked
    )))
}

pub(crate) fn has_buffer(object: &Bound<'_, PyAny>) -> bool {
    // SAFETY: the GIL is held and `object` is live.
    unsafe { ffi::PyObject_CheckBuffer(object.as_ptr()) != 0 }
}

pub(crate) fn is_sequence(object: &Bound<'_, PyAny>) -> bool {
    // SAFETY: the GIL is held and `object` is live.
    unsafe { ffi::PySequence_Check(object.as_ptr()) != 0 }
}

fn unsupported(object: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("expected {ACCEPTED}, got {}", type_name(object)))
}

fn encode_any<'py>(py: Python<'py>, tokens: &Bound<'py, PyAny>) -> PyResult<Encoded<'py>> {
    let raw = tokens.as_ptr();
    // SAFETY: the GIL is held and `raw` is live for the type checks below.
    unsafe {
        if ffi::PyList_CheckExact(raw) != 0 {
            return encode_list_or_tuple(tokens, true);
        }
        if ffi::PyTuple_CheckExact(raw) != 0 {
            return encode_list_or_tuple(tokens, false);
        }
        if ffi::PyRange_Check(raw) != 0 {
            if let Some(encoded) = encode_range(py, tokens)? {
                return Ok(Encoded::Owned(encoded));
            }
            return encode_iterable(tokens).map(Encoded::Owned);
        }
    }
    if tokens.is_instance_of::<PyString>() {
        return Err(unsupported(tokens));
    }
    reject_masked_values(tokens)?;
    if has_buffer(tokens) {
        return match BufferView::get(tokens) {
            Ok(buffer) => match encode_buffer(py, buffer)? {
                Some(encoded) => Ok(encoded),
                None => encode_iterable(tokens).map(Encoded::Owned),
            },
            // numpy object arrays refuse to export a buffer but hold Python objects.
            Err(_) if is_sequence(tokens) => encode_iterable(tokens).map(Encoded::Owned),
            Err(error) => Err(error),
        };
    }
    // torch tensors and other array-likes convert to a numpy array without a copy.
    if tokens.hasattr("__array__")? {
        let array = tokens.call_method0("__array__")?;
        if has_buffer(&array) {
            if let Some(encoded) = encode_buffer(py, BufferView::get(&array)?)? {
                return Ok(encoded);
            }
            return encode_iterable(&array).map(Encoded::Owned);
        }
        return Err(unsupported(tokens));
    }
    if is_sequence(tokens) {
        return encode_iterable(tokens).map(Encoded::Owned);
    }
    Err(unsupported(tokens))
}

/// Runs `work`, turning a Rust panic into a RuntimeError. PyO3 would raise its
/// PanicException, which derives from BaseException and escapes `except Exception`.
pub(crate) fn without_panics<T>(work: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(PyRuntimeError::new_err(format!(
            "internal error in tinker_accel ({reason}); please report it with the input that caused it"
        )))
    })
}

/// Encode token IDs as a compact JSON array.
#[pyfunction]
pub(crate) fn encode_tokens<'py>(
    py: Python<'py>,
    tokens: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let encoded = without_panics(|| encode_any(py, tokens))?;
    Ok(encoded.into_bytes(py))
}

/// Return a new list of exact ints from a list or tuple of token IDs, converting
/// each item as `operator.index` does. Other inputs raise TypeError.
#[pyfunction]
fn tokens_to_list<'py>(py: Python<'py>, tokens: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    without_panics(|| copy_as_int_list(py, tokens))
}

/// Returns `tokens` itself when it is an exact list or tuple of exact ints, and
/// otherwise what `tokens_to_list` returns. A JSON-mode serializer returns this to
/// pydantic, which copies the items into its own output, so a copy here would be
/// a second one: at 8K token IDs it took 18 of the 138 us of `model_dump(mode="json")`.
#[pyfunction]
fn _json_token_sequence<'py>(
    py: Python<'py>,
    tokens: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if all_exact_ints(tokens) {
        return Ok(tokens.clone());
    }
    tokens_to_list(py, tokens)
}

/// Returns whether `tokens` is an exact list or tuple whose items are all exact ints.
fn all_exact_ints(tokens: &Bound<'_, PyAny>) -> bool {
    let raw = tokens.as_ptr();
    // SAFETY: the GIL is held and `raw` is live.
    let (is_list, is_tuple) = unsafe {
        (
            ffi::PyList_CheckExact(raw) != 0,
            ffi::PyTuple_CheckExact(raw) != 0,
        )
    };
    if !is_list && !is_tuple {
        return false;
    }
    // SAFETY: `raw` is an exact list or tuple and the GIL is held. No Python code runs
    // in the loop, so the size and the items stay as read.
    unsafe {
        let size = if is_list {
            ffi::PyList_Size(raw)
        } else {
            ffi::PyTuple_Size(raw)
        };
        let int_type = &raw mut ffi::PyLong_Type;
        match object_layout::layout() {
            Some(_) => {
                let items = object_layout::items(raw, is_list);
                (0..size).all(|index| ffi::Py_TYPE(*items.offset(index)) == int_type)
            }
            None => (0..size).all(|index| {
                let item = if is_list {
                    ffi::PyList_GetItem(raw, index)
                } else {
                    ffi::PyTuple_GetItem(raw, index)
                };
                ffi::Py_TYPE(item) == int_type
            }),
        }
    }
}

fn copy_as_int_list<'py>(
    py: Python<'py>,
    tokens: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let raw = tokens.as_ptr();
    // SAFETY: the GIL is held and `raw` is live.
    let accepted = unsafe { ffi::PyList_CheckExact(raw) != 0 || ffi::PyTuple_CheckExact(raw) != 0 };
    if !accepted {
        return Err(unsupported(tokens));
    }

    // A shallow copy in C, then only the items that are not exact ints are replaced.
    // The copy is private, so no other code can change it while items convert.
    // SAFETY: `raw` is a list or tuple; a null result means a Python error is set.
    let copy = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PySequence_List(raw))? };
    // SAFETY: `copy` is a new list.
    let size = unsafe { ffi::PyList_Size(copy.as_ptr()) };
    for index in 0..size {
        // SAFETY: `index < size` and only this loop changes `copy`, keeping its size.
        let item = unsafe { ffi::PyList_GetItem(copy.as_ptr(), index) };
        // SAFETY: `item` is live and the GIL is held.
        if unsafe { ffi::PyLong_CheckExact(item) } != 0 {
            continue;
        }
        // SAFETY: the copy keeps `item` alive until it is replaced below.
        let item = unsafe { Bound::from_borrowed_ptr(py, item) };
        // SAFETY: `item` is live and the GIL is held.
        if unsafe { ffi::PyIndex_Check(item.as_ptr()) } == 0 {
            return Err(invalid_token(index as usize, &item));
        }
        // SAFETY: a null result means a Python error is set.
        let converted =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyNumber_Index(item.as_ptr()))? };
        // SAFETY: `index` is in range; `PyList_SetItem` takes over the new reference.
        if unsafe { ffi::PyList_SetItem(copy.as_ptr(), index, converted.into_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(copy)
}

/// Return how list items are read: "direct" where the interpreter's object layout is
/// known, "api" otherwise. For tests and diagnostics.
#[pyfunction]
fn _list_reader() -> &'static str {
    if object_layout::layout().is_some() {
        "direct"
    } else {
        "api"
    }
}

/// Return the compact JSON body of `data` as `json.dumps(data, ensure_ascii=False,
/// separators=(",", ":"), allow_nan=False).encode()` writes it, with `fragments[i]`
/// in place of the string `placeholder_prefix + str(i)`. Return None where only the
/// `json` module's own path gives the right output or error.
#[pyfunction]
fn dumps_document<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    placeholder_prefix: &str,
    fragments: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    without_panics(|| crate::document::dumps(py, data, placeholder_prefix, fragments))
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(encode_tokens, module)?)?;
    module.add_function(wrap_pyfunction!(tokens_to_list, module)?)?;
    module.add_function(wrap_pyfunction!(_list_reader, module)?)?;
    module.add_function(wrap_pyfunction!(_json_token_sequence, module)?)?;
    module.add_function(wrap_pyfunction!(dumps_document, module)?)?;
    module.add_class::<crate::python_plain::PlainPlan>()?;
    module.add_function(wrap_pyfunction!(
        crate::python_floats::encode_floats,
        module
    )?)?;
    module.add_function(wrap_pyfunction!(
        crate::python_floats::_encode_exact,
        module
    )?)?;
    module.add_function(wrap_pyfunction!(
        crate::python_floats::_force_float_path,
        module
    )?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    object_layout::init(module.py())?;
    Ok(())
}

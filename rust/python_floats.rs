//! PyO3 glue of the float encoder: Python lists, sequences and float buffers in,
//! compact JSON bytes out, as `json.dumps([float(v) for v in values])` writes them.

use pyo3::exceptions::{PyException, PyMemoryError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};

use crate::encode::ByteOrder;
use crate::floats::{self, FloatError, FloatLayout, FloatPath, FloatType, FloatWriter};
use crate::object_layout;
use crate::python::{
    dimension_error, has_buffer, is_sequence, reject_masked_values, short_repr, type_name,
    view_format, view_len_and_stride, without_panics, BufferView, SendPtr,
};

const ACCEPTED: &str = "a list or tuple of floats, a sequence of real numbers, \
                        or a 1-D buffer of float32 or float64 values";

/// Values collected from Python objects before they are formatted in one call.
const PENDING: usize = 256;

fn to_py_error(error: FloatError) -> PyErr {
    match error {
        FloatError::NotFinite { index, value } => {
            // The text of json's own error, then what it lacks: the value and where.
            let value_text = if value.is_nan() {
                "nan"
            } else if value > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            PyValueError::new_err(format!(
                "Out of range float values are not JSON compliant: {value_text} at index {index}"
            ))
        }
        FloatError::OutOfMemory { .. } => PyMemoryError::new_err(error.to_string()),
        FloatError::OutOfBounds { .. } => PyValueError::new_err(error.to_string()),
    }
}

fn invalid_value(index: usize, item: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "invalid value at index {index}: expected a float, got {} {}",
        type_name(item),
        short_repr(item)
    ))
}

/// Converts one item as `float(item)` does, except that text is not parsed.
fn as_float(index: usize, item: &Bound<'_, PyAny>) -> PyResult<f64> {
    let raw = item.as_ptr();
    // SAFETY: the GIL is held and `raw` is live.
    if unsafe { ffi::PyFloat_CheckExact(raw) } != 0 {
        // SAFETY: as above; an exact float converts without error.
        return Ok(unsafe { ffi::PyFloat_AsDouble(raw) });
    }
    if item.is_instance_of::<PyString>()
        || item.is_instance_of::<PyBytes>()
        || item.is_instance_of::<PyByteArray>()
    {
        return Err(invalid_value(index, item));
    }
    // `float(item)` itself, so that a subclass's own `__float__` is honoured too.
    // SAFETY: as above; a null result means a Python error is set.
    let converted = unsafe { Bound::from_owned_ptr_or_err(item.py(), ffi::PyNumber_Float(raw)) };
    match converted {
        // SAFETY: the result of PyNumber_Float is a float.
        Ok(number) => Ok(unsafe { ffi::PyFloat_AsDouble(number.as_ptr()) }),
        Err(error) if error.is_instance_of::<PyTypeError>(item.py()) => {
            Err(invalid_value(index, item))
        }
        Err(error) => Err(error),
    }
}

/// Returns `len(values)` as a size hint: capped, and 0 where `__len__` raises an
/// Exception, as `operator.length_hint` ignores it. Others, such as
/// KeyboardInterrupt, propagate.
fn length_hint(values: &Bound<'_, PyAny>) -> PyResult<usize> {
    match values.len() {
        Ok(len) => Ok(len.min(MAX_LENGTH_HINT)),
        Err(error) if error.is_instance_of::<PyException>(values.py()) => Ok(0),
        Err(error) => Err(error),
    }
}

/// Largest item count taken from a `__len__` to size the output up front.
const MAX_LENGTH_HINT: usize = 1 << 20;

/// Values read from Python objects, formatted a block at a time, away from the API
/// calls that read them.
struct PendingFloats {
    writer: FloatWriter,
    values: [f64; PENDING],
    count: usize,
}

impl PendingFloats {
    fn with_capacity(expected_items: usize) -> Self {
        Self {
            writer: FloatWriter::with_capacity(expected_items),
            values: [0.0; PENDING],
            count: 0,
        }
    }

    fn push(&mut self, value: f64) -> PyResult<()> {
        self.values[self.count] = value;
        self.count += 1;
        if self.count == PENDING {
            self.writer.extend_f64s(&self.values).map_err(to_py_error)?;
            self.count = 0;
        }
        Ok(())
    }

    fn finish(mut self) -> PyResult<Vec<u8>> {
        self.writer
            .extend_f64s(&self.values[..self.count])
            .map_err(to_py_error)?;
        self.writer.finish().map_err(to_py_error)
    }
}

/// Encodes the items of any iterable, converting each as `float()` does.
fn encode_items(values: &Bound<'_, PyAny>, hint: usize) -> PyResult<Vec<u8>> {
    let mut pending = PendingFloats::with_capacity(hint);
    for (index, item) in values.try_iter()?.enumerate() {
        pending.push(as_float(index, &item?)?)?;
    }
    pending.finish()
}

/// Encodes an exact list or tuple. Exact floats are read straight from object memory
/// where the layout is known. Anything else converts through `as_float`, which may run
/// Python code that changes a list, so its size and items are read again after it,
/// and the list then behaves as under Python's list iterator.
fn encode_list_or_tuple(values: &Bound<'_, PyAny>, is_list: bool) -> PyResult<Vec<u8>> {
    let raw = values.as_ptr();
    // SAFETY (both calls): `raw` is an exact list or tuple and the GIL is held.
    let read_size = || unsafe {
        if is_list {
            ffi::PyList_Size(raw)
        } else {
            ffi::PyTuple_Size(raw)
        }
    };
    let direct = object_layout::layout().is_some();
    let mut size = read_size();
    let mut pending = PendingFloats::with_capacity(size.max(0) as usize);

    let mut index: isize = 0;
    while index < size {
        // SAFETY: `index < size` and no Python code has run since `size` was read, so
        // the item exists; the container keeps the borrowed item alive meanwhile.
        let item = unsafe {
            if direct {
                *object_layout::items(raw, is_list).offset(index)
            } else if is_list {
                ffi::PyList_GetItem(raw, index)
            } else {
                ffi::PyTuple_GetItem(raw, index)
            }
        };
        // SAFETY: `item` is live and the GIL is held; `float_value` is given an exact
        // float on an interpreter whose layout `layout()` recognized.
        let value = if direct && unsafe { ffi::PyFloat_CheckExact(item) } != 0 {
            unsafe { object_layout::float_value(item) }
        } else {
            // SAFETY: the strong reference keeps the item alive while `__float__` runs.
            let item = unsafe { Bound::from_borrowed_ptr(values.py(), item) };
            let value = as_float(index as usize, &item)?;
            size = read_size();
            value
        };
        pending.push(value)?;
        index += 1;
    }
    pending.finish()
}

/// Reads the layout of an exported float buffer, or returns `None` for a buffer of
/// Python objects.
fn float_layout_of(view: &ffi::Py_buffer) -> PyResult<Option<FloatLayout>> {
    if view.ndim != 1 {
        return Err(dimension_error(view, "floats"));
    }
    let format = view_format(view);
    if format == "O" {
        return Ok(None);
    }
    let (order, code) = match format.as_bytes() {
        [code] | [b'@' | b'=', code] => (ByteOrder::NATIVE, *code),
        [b'<', code] => (ByteOrder::Little, *code),
        [b'>' | b'!', code] => (ByteOrder::Big, *code),
        _ => (ByteOrder::NATIVE, 0),
    };
    let itemsize = usize::try_from(view.itemsize).unwrap_or(0);
    let element = match (code, FloatType::from_size(itemsize)) {
        (b'f', Some(FloatType::F32)) => FloatType::F32,
        (b'd', Some(FloatType::F64)) => FloatType::F64,
        _ => {
            return Err(PyTypeError::new_err(format!(
                "unsupported buffer format {format:?}: expected float32 or float64 items"
            )))
        }
    };
    let (len, stride) = view_len_and_stride(view);
    Ok(Some(FloatLayout {
        element,
        order,
        len,
        stride,
    }))
}

/// Encodes an exported buffer with the GIL released, or returns `None` for a buffer
/// of Python objects.
fn encode_float_buffer(py: Python<'_>, buffer: &BufferView) -> PyResult<Option<Vec<u8>>> {
    let Some(layout) = float_layout_of(&buffer.view)? else {
        return Ok(None);
    };
    let base = SendPtr(buffer.view.buf.cast::<u8>().cast_const());
    // SAFETY: the exporter promises that every element of the 1-D view is readable
    // until `PyBuffer_Release`, which runs when the caller drops `buffer`, after this
    // call. Writers on other threads may change values meanwhile, which `encode_raw`
    // tolerates: it never reads outside the elements of the layout.
    let encoded = py.detach(move || {
        let base = base;
        unsafe { floats::encode_raw(base.0, layout) }
    });
    encoded.map(Some).map_err(to_py_error)
}

fn encode_buffer_or_items(py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    match BufferView::get(values) {
        Ok(buffer) => match encode_float_buffer(py, &buffer)? {
            Some(encoded) => Ok(encoded),
            None => {
                drop(buffer);
                encode_items(values, length_hint(values)?)
            }
        },
        // numpy object arrays refuse to export a buffer but hold Python objects.
        Err(_) if is_sequence(values) => encode_items(values, length_hint(values)?),
        Err(error) => Err(error),
    }
}

fn encode_floats_any(py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let raw = values.as_ptr();
    // SAFETY: the GIL is held and `raw` is live.
    if unsafe { ffi::PyList_CheckExact(raw) } != 0 {
        return encode_list_or_tuple(values, true);
    }
    // SAFETY: as above.
    if unsafe { ffi::PyTuple_CheckExact(raw) } != 0 {
        return encode_list_or_tuple(values, false);
    }
    if values.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "expected {ACCEPTED}, got {}",
            type_name(values)
        )));
    }
    reject_masked_values(values)?;
    if has_buffer(values) {
        return encode_buffer_or_items(py, values);
    }
    // torch tensors and other array-likes convert to a numpy array without a copy.
    if values.hasattr("__array__")? {
        let array = values.call_method0("__array__")?;
        if has_buffer(&array) {
            return encode_buffer_or_items(py, &array);
        }
    } else if is_sequence(values) {
        return encode_items(values, length_hint(values)?);
    }
    Err(PyTypeError::new_err(format!(
        "expected {ACCEPTED}, got {}",
        type_name(values)
    )))
}

/// Encode floats as a compact JSON array, as `json.dumps` writes them.
#[pyfunction]
pub(crate) fn encode_floats<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let encoded = without_panics(|| encode_floats_any(py, values))?;
    Ok(PyBytes::new(py, &encoded))
}

/// Make every later float encoding in this process take `path`: "avx512", "avx2" or
/// "scalar", or the fastest path this CPU has for None. For tests and benchmarks.
#[pyfunction]
#[pyo3(signature = (path))]
pub(crate) fn _force_float_path(path: Option<&str>) -> PyResult<()> {
    let path = match path {
        None => None,
        Some("avx512") => Some(FloatPath::Avx512),
        Some("avx2") => Some(FloatPath::Avx2),
        Some("scalar") => Some(FloatPath::Scalar),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown float path {other:?}: expected \"avx512\", \"avx2\", \"scalar\" or None"
            )))
        }
    };
    if FloatPath::force(path) {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "this CPU cannot take the float path {path:?}"
        )))
    }
}

/// Returns the JSON array of `values`, a list, if its items are all exact ints or all
/// exact floats (the two cases in which pydantic serializes a `List[int]` or
/// `List[float]` item by item unchanged), or None for anything else.
#[pyfunction]
pub(crate) fn _encode_exact<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    without_panics(|| {
        let Ok(list) = values.cast_exact::<PyList>() else {
            return Ok(None);
        };
        let first = match list.get_item(0) {
            Ok(first) => first,
            Err(_) => return Ok(None),
        };
        let kind = first.get_type().as_ptr();
        let int_type = (&raw mut ffi::PyLong_Type).cast::<ffi::PyObject>();
        let float_type = (&raw mut ffi::PyFloat_Type).cast::<ffi::PyObject>();
        if kind != int_type && kind != float_type {
            return Ok(None);
        }
        // No Python code runs in this loop, so the list cannot change under it.
        if !list.iter().all(|item| item.get_type().as_ptr() == kind) {
            return Ok(None);
        }
        if kind == int_type {
            crate::python::encode_tokens(py, values)?
                .cast_into::<PyBytes>()
                .map(Some)
                .map_err(PyErr::from)
        } else {
            encode_floats(py, values).map(Some)
        }
    })
}

//! JSON documents for request bodies: the bytes of
//! `json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)`
//! encoded as UTF-8, with pre-encoded token arrays put where their placeholder
//! strings are.
//!
//! Only exact dicts, lists, tuples, strings, ints, floats, booleans and `None` are
//! written here. For anything else (a subclass, a key that is not a string, NaN, a
//! lone surrogate, deep nesting) the caller gets `None` and takes the `json` module's
//! own path, so that every output and every error stays the module's.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::floats::{write_repr, MAX_REPR_LEN};
use crate::json_text::{push_string, IntText};

/// Nesting beyond this is left to `json`, which detects cycles and raises
/// RecursionError the way callers know.
const MAX_DEPTH: usize = 64;

/// A value this writer leaves to the `json` module.
struct Unsupported;

struct Document<'a> {
    head: Vec<u8>,
    /// Position in `head` of each fragment, in order.
    cuts: Vec<usize>,
    placeholder_prefix: &'a [u8],
    fragments: usize,
}

impl Document<'_> {
    fn write(&mut self, value: &Bound<'_, PyAny>, depth: usize) -> Result<(), Unsupported> {
        if depth > MAX_DEPTH {
            return Err(Unsupported);
        }
        let raw = value.as_ptr();
        // SAFETY (the checks below): the GIL is held and `raw` is live.
        unsafe {
            if raw == ffi::Py_None() {
                self.head.extend_from_slice(b"null");
            } else if raw == ffi::Py_True() {
                self.head.extend_from_slice(b"true");
            } else if raw == ffi::Py_False() {
                self.head.extend_from_slice(b"false");
            } else if ffi::PyUnicode_CheckExact(raw) != 0 {
                self.write_string(value)?;
            } else if ffi::PyLong_CheckExact(raw) != 0 {
                self.write_int(value)?;
            } else if ffi::PyFloat_CheckExact(raw) != 0 {
                self.write_float(value)?;
            } else if ffi::PyDict_CheckExact(raw) != 0 {
                self.write_dict(value.cast_unchecked::<PyDict>(), depth)?;
            } else if ffi::PyList_CheckExact(raw) != 0 {
                let list = value.cast_unchecked::<PyList>();
                self.write_items(list.iter(), depth)?;
            } else if ffi::PyTuple_CheckExact(raw) != 0 {
                let tuple = value.cast_unchecked::<PyTuple>();
                self.write_items(tuple.iter(), depth)?;
            } else {
                return Err(Unsupported);
            }
        }
        Ok(())
    }

    fn write_string(&mut self, value: &Bound<'_, PyAny>) -> Result<(), Unsupported> {
        let text = utf8(value)?;
        if let Some(rest) = text.strip_prefix(self.placeholder_prefix) {
            // The placeholders must come in order, once each, as `dumps_model` made
            // them; anything else is left to the splicing path, which checks the same.
            if rest != self.cuts.len().to_string().as_bytes() || self.cuts.len() >= self.fragments {
                return Err(Unsupported);
            }
            self.cuts.push(self.head.len());
            return Ok(());
        }
        push_string(&mut self.head, text);
        Ok(())
    }

    fn write_int(&mut self, value: &Bound<'_, PyAny>) -> Result<(), Unsupported> {
        if let Ok(small) = value.extract::<i64>() {
            self.head.extend_from_slice(IntText::new(small).as_bytes());
            return Ok(());
        }
        // `str` of an exact int is what `json` writes. Past the interpreter's digit
        // limit it raises, and so does `json`, on the path the caller falls back to.
        let digits = value.str().map_err(|_| Unsupported)?;
        self.head.extend_from_slice(utf8(digits.as_any())?);
        Ok(())
    }

    fn write_float(&mut self, value: &Bound<'_, PyAny>) -> Result<(), Unsupported> {
        let number: f64 = value.extract().map_err(|_| Unsupported)?;
        if !number.is_finite() {
            // `json` raises ValueError for these with allow_nan=False.
            return Err(Unsupported);
        }
        // `json` writes an exact float as its repr, which `write_repr` writes
        // byte for byte.
        let mut repr = [0u8; MAX_REPR_LEN];
        let len = write_repr(number, &mut repr).ok_or(Unsupported)?;
        self.head.extend_from_slice(&repr[..len]);
        Ok(())
    }

    fn write_dict(&mut self, dict: &Bound<'_, PyDict>, depth: usize) -> Result<(), Unsupported> {
        self.head.push(b'{');
        for (index, (key, value)) in dict.iter().enumerate() {
            // SAFETY: the GIL is held and `key` is live.
            if unsafe { ffi::PyUnicode_CheckExact(key.as_ptr()) } == 0 {
                return Err(Unsupported);
            }
            let text = utf8(&key)?;
            if text.starts_with(self.placeholder_prefix) {
                return Err(Unsupported);
            }
            if index > 0 {
                self.head.push(b',');
            }
            push_string(&mut self.head, text);
            self.head.push(b':');
            self.write(&value, depth + 1)?;
        }
        self.head.push(b'}');
        Ok(())
    }

    fn write_items<'py>(
        &mut self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        depth: usize,
    ) -> Result<(), Unsupported> {
        self.head.push(b'[');
        for (index, item) in items.enumerate() {
            if index > 0 {
                self.head.push(b',');
            }
            self.write(&item, depth + 1)?;
        }
        self.head.push(b']');
        Ok(())
    }
}

/// Returns the UTF-8 form of an exact `str`, or `Unsupported` for a string with lone
/// surrogates, which `json` writes and the later `.encode("utf-8")` rejects.
fn utf8<'a>(value: &'a Bound<'_, PyAny>) -> Result<&'a [u8], Unsupported> {
    // SAFETY: the caller passes an exact str.
    let string = unsafe { value.cast_unchecked::<PyString>() };
    match string.to_str() {
        Ok(text) => Ok(text.as_bytes()),
        Err(error) => {
            drop(error);
            Err(Unsupported)
        }
    }
}

/// Writes `data` as the compact JSON body, with `fragments[i]` in place of the
/// string `placeholder_prefix + str(i)`. Returns `None` where the `json` module's
/// own path must run instead.
pub(crate) fn dumps<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    placeholder_prefix: &str,
    fragments: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mut document = Document {
        head: Vec::with_capacity(512),
        cuts: Vec::new(),
        placeholder_prefix: placeholder_prefix.as_bytes(),
        fragments: fragments.len(),
    };
    if document.write(data, 0).is_err() || document.cuts.len() != document.fragments {
        return Ok(None);
    }
    let pieces: Vec<Bound<'py, PyBytes>> = fragments
        .iter()
        .map(|fragment| fragment.cast_into::<PyBytes>().map_err(PyErr::from))
        .collect::<PyResult<_>>()?;
    let total = pieces
        .iter()
        .map(|piece| piece.as_bytes().len())
        .sum::<usize>()
        + document.head.len();
    // One copy of each piece into a bytes object of the exact size.
    let body = PyBytes::new_with(py, total, |out| {
        let mut position = 0;
        let mut copied_until = 0;
        for (piece, &cut) in pieces.iter().zip(&document.cuts) {
            let head = &document.head[copied_until..cut];
            out[position..position + head.len()].copy_from_slice(head);
            position += head.len();
            let bytes = piece.as_bytes();
            out[position..position + bytes.len()].copy_from_slice(bytes);
            position += bytes.len();
            copied_until = cut;
        }
        out[position..].copy_from_slice(&document.head[copied_until..]);
        Ok(())
    })?;
    Ok(Some(body))
}

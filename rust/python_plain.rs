//! Request bodies written straight from pydantic models, without `model_dump`.
//!
//! `python/tinker_accel/_plain.py` reads a model class's core schema once and builds
//! a [`PlainPlan`]: for each field, in declaration order, its JSON key and the kind of
//! value pydantic writes there. pydantic writes fields in the order of the model's
//! `__dict__`, so a model whose `__dict__` has another order goes to pydantic. [`PlainPlan::dumps`] then writes the body that
//! `json.dumps(model.model_dump(mode="json", exclude_none=...), ensure_ascii=False,
//! separators=(",", ":"), allow_nan=False).encode()` gives, token arrays included.
//!
//! Only values whose exact type matches their field's kind are written here: exact
//! ints, finite floats, strings, booleans, `None`, exact lists and models of exactly
//! the planned class. For anything else (a subclass, a value put in with
//! `model_construct`, NaN, a field kind the plan does not know) the call returns
//! `None` and the caller runs pydantic, so every other output, warning and error
//! stays pydantic's.

use pyo3::exceptions::{PyMemoryError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySet, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::encode::{ArrayWriter, Output};
use crate::floats::{write_repr, MAX_REPR_LEN};
use crate::json_text::{push_string, IntText};
use crate::python::{self, without_panics};

/// Models nested deeper than this go to pydantic.
const MAX_DEPTH: usize = 32;

/// The kind of value pydantic writes for one field or item.
enum Kind {
    Int,
    Float,
    Str,
    Bool,
    /// A `Literal` of these exact strs or ints.
    Literal(Vec<Py<PyAny>>),
    Nullable(Box<Kind>),
    List(Box<Kind>),
    /// A `Sequence[...]` field, which pydantic writes item by item as a list, from
    /// an exact list or tuple here.
    Sequence(Box<Kind>),
    Model(Box<ModelPlan>),
    /// Choices in pydantic's order. The first whose type matches the value exactly
    /// writes it, as in pydantic's strict pass over a union.
    Union(Vec<Kind>),
    /// A `TokenIds` field: written by the token encoder.
    Tokens,
    /// A `TensorData` value list: only exact ints or only exact floats are written.
    ExactValues,
    /// A `TensorData` index list: written as `ExactValues` when its first item is an
    /// exact int, as the field's serializer decides.
    ExactIndices,
    /// A model that the plan cannot write. A value of exactly this class goes to
    /// pydantic, and in a union, a value of another class tries the next choice.
    Opaque(Py<PyType>),
    /// Anything else: a value that reaches it goes to pydantic.
    Unknown,
}

struct Field {
    name: Py<PyString>,
    /// `"name":`, as `json.dumps` writes the key.
    key: Vec<u8>,
    kind: Kind,
}

struct ModelPlan {
    class: Py<PyType>,
    fields: Vec<Field>,
}

/// Reason a plan does not write a value.
enum Stop {
    /// pydantic must serialize the model.
    Unsupported,
    /// An error that pydantic's path would not turn into the same error, such as a
    /// KeyboardInterrupt raised inside an item's `__index__`.
    Raise(PyErr),
}

impl From<crate::encode::EncodeError> for Stop {
    fn from(_: crate::encode::EncodeError) -> Self {
        Self::Unsupported
    }
}

/// How to write one pydantic model class as JSON, built from its core schema by
/// `tinker_accel._plain`.
#[pyclass(frozen, module = "tinker_accel._native")]
pub(crate) struct PlainPlan {
    root: ModelPlan,
}

#[pymethods]
impl PlainPlan {
    /// Build a plan from `("model", cls, ((name, key, kind), ...))`, where each kind
    /// is a tuple such as `("int",)`, `("nullable", kind)` or `("union", (kind, ...))`.
    #[new]
    fn new(tree: &Bound<'_, PyAny>) -> PyResult<Self> {
        match parse_kind(tree, 0)? {
            Kind::Model(root) => Ok(Self { root: *root }),
            _ => Err(PyValueError::new_err("a plan must describe a model")),
        }
    }

    /// Visits the classes and literal values the plan refers to. A plan is stored on
    /// its class, so the two form a cycle that only the garbage collector can free.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.root.traverse(&visit)
    }

    /// Return the JSON body of `model`, or None where pydantic must write it.
    /// `exclude_none` and `exclude_unset` work as the `model_dump` options do.
    #[pyo3(signature = (model, exclude_none, exclude_unset = false))]
    fn dumps<'py>(
        &self,
        py: Python<'py>,
        model: &Bound<'py, PyAny>,
        exclude_none: bool,
        exclude_unset: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        without_panics(|| {
            let mut writer = Writer {
                exclude_none,
                exclude_unset,
                scratch: Vec::new(),
            };
            #[cfg(unix)]
            if let Some(mut out) = python::BytesOutput::with_capacity(py, 1024) {
                return match writer.write_model(&mut out, &self.root, model, 0) {
                    Ok(()) => out.into_bytes(py).map(Some),
                    Err(Stop::Unsupported) => Ok(None),
                    Err(Stop::Raise(error)) => Err(error),
                };
            }
            let mut out = Vec::with_capacity(1024);
            match writer.write_model(&mut out, &self.root, model, 0) {
                Ok(()) => Ok(Some(PyBytes::new(py, &out).into_any())),
                Err(Stop::Unsupported) => Ok(None),
                Err(Stop::Raise(error)) => Err(error),
            }
        })
    }
}

impl ModelPlan {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.class)?;
        self.fields.iter().try_for_each(|field| {
            visit.call(&field.name)?;
            field.kind.traverse(visit)
        })
    }
}

impl Kind {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Self::Literal(values) => values.iter().try_for_each(|value| visit.call(value)),
            Self::Nullable(inner) | Self::List(inner) | Self::Sequence(inner) => {
                inner.traverse(visit)
            }
            Self::Model(plan) => plan.traverse(visit),
            Self::Opaque(class) => visit.call(class),
            Self::Union(choices) => choices.iter().try_for_each(|choice| choice.traverse(visit)),
            _ => Ok(()),
        }
    }
}

fn invalid_plan(tree: &Bound<'_, PyAny>) -> PyErr {
    PyValueError::new_err(format!("invalid plan node: {}", python::short_repr(tree)))
}

fn parse_kind(tree: &Bound<'_, PyAny>, depth: usize) -> PyResult<Kind> {
    if depth > MAX_DEPTH {
        return Ok(Kind::Unknown);
    }
    let node = tree.cast::<PyTuple>().map_err(|_| invalid_plan(tree))?;
    let tag: String = node.get_item(0)?.extract()?;
    let kind = match tag.as_str() {
        "int" => Kind::Int,
        "float" => Kind::Float,
        "str" => Kind::Str,
        "bool" => Kind::Bool,
        "tokens" => Kind::Tokens,
        "exact_values" => Kind::ExactValues,
        "exact_indices" => Kind::ExactIndices,
        "unknown" => Kind::Unknown,
        "opaque" => Kind::Opaque(node.get_item(1)?.cast_into::<PyType>()?.unbind()),
        "literal" => {
            let values = node.get_item(1)?;
            let values = values.cast::<PyTuple>().map_err(|_| invalid_plan(tree))?;
            Kind::Literal(values.iter().map(Bound::unbind).collect())
        }
        "nullable" => Kind::Nullable(Box::new(parse_kind(&node.get_item(1)?, depth + 1)?)),
        "list" => Kind::List(Box::new(parse_kind(&node.get_item(1)?, depth + 1)?)),
        "sequence" => Kind::Sequence(Box::new(parse_kind(&node.get_item(1)?, depth + 1)?)),
        "union" => {
            let choices = node.get_item(1)?;
            let choices = choices.cast::<PyTuple>().map_err(|_| invalid_plan(tree))?;
            Kind::Union(
                choices
                    .iter()
                    .map(|choice| parse_kind(&choice, depth + 1))
                    .collect::<PyResult<_>>()?,
            )
        }
        "model" => {
            let class = node.get_item(1)?.cast_into::<PyType>()?.unbind();
            let fields = node.get_item(2)?;
            let fields = fields.cast::<PyTuple>().map_err(|_| invalid_plan(tree))?;
            let fields = fields
                .iter()
                .map(|field| {
                    let field = field.cast_into::<PyTuple>()?;
                    let name = field.get_item(0)?.cast_into::<PyString>()?;
                    let key: Vec<u8> = field.get_item(1)?.extract()?;
                    let kind = parse_kind(&field.get_item(2)?, depth + 1)?;
                    Ok(Field {
                        name: name.unbind(),
                        key,
                        kind,
                    })
                })
                .collect::<PyResult<_>>()?;
            Kind::Model(Box::new(ModelPlan { class, fields }))
        }
        _ => return Err(invalid_plan(tree)),
    };
    Ok(kind)
}

/// Whether a union choice takes a value.
enum Match {
    Yes,
    No,
    /// The choice's kind is unknown here, so pydantic might pick it.
    Unknown,
}

struct Writer {
    exclude_none: bool,
    exclude_unset: bool,
    /// Room for one string's JSON form before it is copied to the output.
    scratch: Vec<u8>,
}

/// Appends `bytes` to `out`.
fn push<O: Output>(out: &mut O, bytes: &[u8]) -> Result<(), Stop> {
    out.reserve(bytes.len())?;
    let len = out.len();
    // SAFETY: `reserve` made `bytes.len()` bytes writable after the output, and
    // `bytes` cannot overlap storage that only `out` owns.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().add(len), bytes.len());
        out.set_len(len + bytes.len());
    }
    Ok(())
}

/// Returns whether `raw` has exactly the type `expected`.
fn has_type(raw: *mut ffi::PyObject, expected: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: the caller holds the GIL and `raw` is live.
    unsafe { ffi::Py_TYPE(raw) == expected }
}

impl Writer {
    fn write_model<O: Output>(
        &mut self,
        out: &mut O,
        plan: &ModelPlan,
        model: &Bound<'_, PyAny>,
        depth: usize,
    ) -> Result<(), Stop> {
        let py = model.py();
        if depth > MAX_DEPTH || !has_type(model.as_ptr(), plan.class.as_ptr().cast()) {
            return Err(Stop::Unsupported);
        }
        // pydantic writes extra fields after the declared ones: leave those models
        // to it.
        let extra = model
            .getattr(pyo3::intern!(py, "__pydantic_extra__"))
            .map_err(|_| Stop::Unsupported)?;
        if !extra.is_none() && extra.len().map_or(true, |len| len > 0) {
            return Err(Stop::Unsupported);
        }

        let values = model
            .getattr(pyo3::intern!(py, "__dict__"))
            .map_err(|_| Stop::Unsupported)?;
        let values = values
            .cast_exact::<PyDict>()
            .map_err(|_| Stop::Unsupported)?;

        // With `exclude_unset`, only the fields given when the model was made, which
        // pydantic keeps in this set.
        let fields_set = if self.exclude_unset {
            let set = model
                .getattr(pyo3::intern!(py, "__pydantic_fields_set__"))
                .map_err(|_| Stop::Unsupported)?;
            Some(
                set.cast_into_exact::<PySet>()
                    .map_err(|_| Stop::Unsupported)?,
            )
        } else {
            None
        };

        // pydantic writes the fields in the order of the model's `__dict__`, which is
        // the declared order unless a field was deleted and set again. A different
        // order, or keys that are not fields, go to pydantic.
        if values.len() != plan.fields.len() {
            return Err(Stop::Unsupported);
        }
        push(out, b"{")?;
        let mut first = true;
        for (field, (key, value)) in plan.fields.iter().zip(values.iter()) {
            let name = field.name.bind(py);
            // Keys are usually the interned field names themselves. Otherwise only an
            // exact str is compared, so that no `__eq__` of a subclass runs.
            if !key.is(name) {
                let key = key
                    .cast_exact::<PyString>()
                    .map_err(|_| Stop::Unsupported)?;
                match (key.to_str(), name.to_str()) {
                    (Ok(key), Ok(name)) if key == name => {}
                    _ => return Err(Stop::Unsupported),
                }
            }
            if let Some(fields_set) = &fields_set {
                if !fields_set.contains(name).map_err(|_| Stop::Unsupported)? {
                    continue;
                }
            }
            if self.exclude_none && value.is_none() {
                continue;
            }
            if !first {
                push(out, b",")?;
            }
            first = false;
            push(out, &field.key)?;
            self.write_value(out, &field.kind, &value, depth)?;
        }
        push(out, b"}")
    }

    fn write_value<O: Output>(
        &mut self,
        out: &mut O,
        kind: &Kind,
        value: &Bound<'_, PyAny>,
        depth: usize,
    ) -> Result<(), Stop> {
        let raw = value.as_ptr();
        match kind {
            Kind::Int if has_type(raw, &raw mut ffi::PyLong_Type) => self.write_int(out, value),
            Kind::Float
                if has_type(raw, &raw mut ffi::PyFloat_Type)
                    || has_type(raw, &raw mut ffi::PyLong_Type)
                    || has_type(raw, &raw mut ffi::PyBool_Type) =>
            {
                // pydantic's float serializer writes an int or a bool as `float()` of
                // it, without a warning: a default such as `top_p: float = 1` is the
                // int 1 and is written `1.0`.
                // SAFETY: `raw` is an exact float, int or bool and the GIL is held.
                let number = unsafe { ffi::PyFloat_AsDouble(raw) };
                if number == -1.0 && PyErr::take(value.py()).is_some() {
                    // An int too large for a float: pydantic's path raises.
                    return Err(Stop::Unsupported);
                }
                let mut repr = [0u8; MAX_REPR_LEN];
                // `json` writes an exact float as its repr, and raises on NaN and
                // infinity, which pydantic's path then does.
                let len = write_repr(number, &mut repr).ok_or(Stop::Unsupported)?;
                push(out, &repr[..len])
            }
            Kind::Str if has_type(raw, &raw mut ffi::PyUnicode_Type) => self.write_str(out, value),
            Kind::Bool if has_type(raw, &raw mut ffi::PyBool_Type) => {
                // SAFETY: `Py_True` returns the interpreter's `True`, a live object.
                let is_true = raw == unsafe { ffi::Py_True() };
                push(out, if is_true { b"true" } else { b"false" })
            }
            Kind::Literal(_) => match literal_match(kind, value) {
                Match::Yes if has_type(raw, &raw mut ffi::PyUnicode_Type) => {
                    self.write_str(out, value)
                }
                Match::Yes => self.write_int(out, value),
                _ => Err(Stop::Unsupported),
            },
            Kind::Nullable(_) if value.is_none() => push(out, b"null"),
            Kind::Nullable(inner) => self.write_value(out, inner, value, depth),
            Kind::List(item_kind) => {
                let list = value
                    .cast_exact::<PyList>()
                    .map_err(|_| Stop::Unsupported)?;
                self.write_items(out, item_kind, list.iter(), depth)
            }
            Kind::Sequence(item_kind) => {
                if let Ok(list) = value.cast_exact::<PyList>() {
                    self.write_items(out, item_kind, list.iter(), depth)
                } else {
                    let tuple = value
                        .cast_exact::<PyTuple>()
                        .map_err(|_| Stop::Unsupported)?;
                    self.write_items(out, item_kind, tuple.iter(), depth)
                }
            }
            Kind::Model(plan) => self.write_model(out, plan, value, depth + 1),
            Kind::Union(choices) => {
                for choice in choices {
                    match choice_match(choice, value) {
                        Match::Yes => return self.write_value(out, choice, value, depth),
                        Match::No => {}
                        Match::Unknown => return Err(Stop::Unsupported),
                    }
                }
                Err(Stop::Unsupported)
            }
            Kind::Tokens => write_tokens(out, value),
            Kind::ExactValues => write_exact(out, value),
            Kind::ExactIndices => {
                // The index serializer encodes only lists whose first item is an
                // exact int; pydantic writes the rest.
                let list = value
                    .cast_exact::<PyList>()
                    .map_err(|_| Stop::Unsupported)?;
                match list.get_item(0) {
                    Ok(first) if has_type(first.as_ptr(), &raw mut ffi::PyLong_Type) => {
                        write_exact(out, value)
                    }
                    _ => Err(Stop::Unsupported),
                }
            }
            _ => Err(Stop::Unsupported),
        }
    }

    fn write_items<'py, O: Output>(
        &mut self,
        out: &mut O,
        item_kind: &Kind,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        depth: usize,
    ) -> Result<(), Stop> {
        push(out, b"[")?;
        for (index, item) in items.enumerate() {
            if index > 0 {
                push(out, b",")?;
            }
            self.write_value(out, item_kind, &item, depth)?;
        }
        push(out, b"]")
    }

    fn write_int<O: Output>(&mut self, out: &mut O, value: &Bound<'_, PyAny>) -> Result<(), Stop> {
        if let Ok(small) = value.extract::<i64>() {
            return push(out, IntText::new(small).as_bytes());
        }
        // `str` of an exact int is what `json` writes. Past the interpreter's digit
        // limit it raises, and so does pydantic's path.
        let text = value.str().map_err(|_| Stop::Unsupported)?;
        let text = text.to_str().map_err(|_| Stop::Unsupported)?;
        push(out, text.as_bytes())
    }

    fn write_str<O: Output>(&mut self, out: &mut O, value: &Bound<'_, PyAny>) -> Result<(), Stop> {
        // SAFETY: the caller checked that `value` is an exact str.
        let string = unsafe { value.cast_unchecked::<PyString>() };
        // A lone surrogate makes the stock `.encode("utf-8")` raise: pydantic's path
        // raises the same.
        let text = string.to_str().map_err(|_| Stop::Unsupported)?;
        self.scratch.clear();
        push_string(&mut self.scratch, text.as_bytes());
        push(out, &self.scratch)
    }
}

fn literal_match(kind: &Kind, value: &Bound<'_, PyAny>) -> Match {
    let Kind::Literal(expected) = kind else {
        return Match::Unknown;
    };
    let raw = value.as_ptr();
    let is_text = has_type(raw, &raw mut ffi::PyUnicode_Type);
    let is_int = has_type(raw, &raw mut ffi::PyLong_Type);
    if !is_text && !is_int {
        return Match::No;
    }
    let py = value.py();
    for candidate in expected {
        let candidate = candidate.bind(py);
        // SAFETY: both objects are live and the GIL is held.
        let same_type = unsafe { ffi::Py_TYPE(candidate.as_ptr()) == ffi::Py_TYPE(raw) };
        if same_type && candidate.eq(value).unwrap_or(false) {
            return Match::Yes;
        }
    }
    Match::No
}

fn choice_match(choice: &Kind, value: &Bound<'_, PyAny>) -> Match {
    let raw = value.as_ptr();
    let exact = |expected: *mut ffi::PyTypeObject| {
        if has_type(raw, expected) {
            Match::Yes
        } else {
            Match::No
        }
    };
    match choice {
        Kind::Int => exact(&raw mut ffi::PyLong_Type),
        Kind::Float => exact(&raw mut ffi::PyFloat_Type),
        Kind::Str => exact(&raw mut ffi::PyUnicode_Type),
        Kind::Bool => exact(&raw mut ffi::PyBool_Type),
        Kind::Literal(_) => literal_match(choice, value),
        Kind::Nullable(_) if value.is_none() => Match::Yes,
        Kind::Nullable(inner) => choice_match(inner, value),
        Kind::Model(plan) => exact(plan.class.as_ptr().cast()),
        Kind::Opaque(class) => exact(class.as_ptr().cast()),
        // pydantic tries a sequence choice item by item, and an item of another type
        // makes it try the next choice.
        Kind::Sequence(item_kind) => {
            let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = value.cast_exact::<PyList>() {
                list.iter().collect()
            } else if let Ok(tuple) = value.cast_exact::<PyTuple>() {
                tuple.iter().collect()
            } else {
                return Match::Unknown;
            };
            for item in &items {
                match choice_match(item_kind, item) {
                    Match::Yes => {}
                    other => return other,
                }
            }
            Match::Yes
        }
        _ => Match::Unknown,
    }
}

/// Turns an encoder error into `Stop`: the errors pydantic's path raises for the same
/// input in its own form go there, any other is raised as it is.
fn encoder_error(py: Python<'_>, error: PyErr) -> Stop {
    let expected = error.is_instance_of::<PyTypeError>(py)
        || error.is_instance_of::<PyValueError>(py)
        || error.is_instance_of::<PyOverflowError>(py)
        || error.is_instance_of::<PyMemoryError>(py);
    if expected {
        Stop::Unsupported
    } else {
        Stop::Raise(error)
    }
}

fn write_tokens<O: Output>(out: &mut O, tokens: &Bound<'_, PyAny>) -> Result<(), Stop> {
    let py = tokens.py();
    let raw = tokens.as_ptr();
    // SAFETY: the GIL is held and `raw` is live.
    let (is_list, is_tuple) = unsafe {
        (
            ffi::PyList_CheckExact(raw) != 0,
            ffi::PyTuple_CheckExact(raw) != 0,
        )
    };
    // Only exact ints in an exact list or tuple: other tokens may run Python code
    // (`__index__`, `__array__`), which must run once, on pydantic's path, if the
    // plan gives up later in the body.
    if !is_list && !is_tuple {
        return Err(Stop::Unsupported);
    }
    // Room for every token ID below 10^7 up front, so the output grows once.
    let len = tokens.len().map_err(|_| Stop::Unsupported)?;
    out.reserve(
        len.saturating_mul(8)
            .saturating_add(2 + crate::encode::STORE_SLACK),
    )?;
    let writer = ArrayWriter::new_in(&mut *out)?;
    python::fill_from_list_or_tuple(tokens, is_list, writer, true)
        .map_err(|error| encoder_error(py, error))?;
    Ok(())
}

fn write_exact<O: Output>(out: &mut O, values: &Bound<'_, PyAny>) -> Result<(), Stop> {
    let py = values.py();
    let encoded = crate::python_floats::_encode_exact(py, values)
        .map_err(|error| encoder_error(py, error))?
        .ok_or(Stop::Unsupported)?;
    push(out, encoded.as_bytes())
}

//! driftline's native event decoder: a batch of events (an NDJSON body, or Kafka record
//! values) parsed straight into columns of predictions, one set of columns per model.
//!
//! `service.events` decodes with msgspec into a Python object per event and field; the
//! engine then pulls columns out of them again. Here the bytes go to columns directly, with
//! the GIL released while parsing.
//!
//! It never decides anything Python would decide differently. It accepts a prediction only
//! when it is sure msgspec and the validator would accept it with the same values, and
//! leaves `label` and `infra` events to Python (their index is returned). Anything else (a
//! line that is not a JSON object, a prediction it is not sure of: a bad field, an unusual
//! timestamp, a duplicate key) makes the whole batch return `None`, and Python decodes it
//! as before, with its reasons for every rejection. `tests/test_native.py` holds the two
//! to the same result.

mod json;

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use json::{Reader, Value};

const MAX_MODEL_BYTES: usize = 128;
const MAX_ID_CHARS: usize = 256;
// As service.features and service.events bound strings: a longer one is Python's to reject.
const MAX_VALUE_CHARS: usize = 1024; // a feature's string value, a class predicted
const MAX_NAME_CHARS: usize = 256; // a feature's name
const MAX_VERSION_CHARS: usize = 128;
const MAX_UNIX_SECONDS: f64 = 1e11; // as service.events: UNIX seconds must be below this
const SCANNED: usize = 16; // up to this many distinct strings, a linear scan beats hashing

/// The top-level fields of one event (`features` go to the decoder's buffer).
#[derive(Default)]
struct Fields<'a> {
    kind: Option<Value<'a>>,
    model: Option<Value<'a>>,
    timestamp: Option<Value<'a>>,
    model_version: Option<Value<'a>>,
    id: Option<Value<'a>>,
    latency_ms: Option<Value<'a>>,
    status: Option<Value<'a>>,
    prediction: Option<Value<'a>>,
    score: Option<Value<'a>>,
}

/// One event's fields, its features into `features`; None on anything this decoder does
/// not read as msgspec would (a duplicate key, features not an object of scalars).
fn fields<'a>(text: &'a str, features: &mut Vec<(Cow<'a, str>, Value<'a>)>) -> Option<Fields<'a>> {
    let mut fields = Fields::default();
    let mut has_features = false;
    let mut reader = Reader::new(text);
    reader.object(|reader, key| {
        let slot = match key.as_ref() {
            "kind" => &mut fields.kind,
            "model" => &mut fields.model,
            "timestamp" => &mut fields.timestamp,
            "model_version" => &mut fields.model_version,
            "id" => &mut fields.id,
            "latency_ms" => &mut fields.latency_ms,
            "status" => &mut fields.status,
            "prediction" => &mut fields.prediction,
            "score" => &mut fields.score,
            // A multiclass score mapping: the Python decoder reads it (service/events.py).
            "scores" => return None,
            // A segment name: the Python decoder reads it (service/core/events.py).
            "segment" => return None,
            "features" => {
                if has_features || !reader.at_object() {
                    return None;
                }
                has_features = true;
                return reader.object(|reader, name| match reader.value()? {
                    Value::Nested => None,
                    Value::Str(text) if !within(&text, MAX_VALUE_CHARS) => None,
                    _ if !within(&name, MAX_NAME_CHARS) => None,
                    value => {
                        features.push((name, value));
                        Some(())
                    }
                });
            }
            _ => return reader.value().map(|_| ()),
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(reader.value()?);
        Some(())
    })?;
    reader.end()?;
    Some(fields)
}

// -- checks the validator makes ------------------------------------------------------------

/// Whether `text` has at most `max` characters (counted only when its bytes are more).
fn within(text: &str, max: usize) -> bool {
    text.len() <= max || text.chars().count() <= max
}

fn valid_model(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MODEL_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn digits(text: &[u8]) -> Option<i64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic Gregorian calendar.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UNIX seconds of `YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+HH:MM|-HH:MM]` (no zone = UTC), as
/// Python's `datetime.timestamp()` gives them; None for any other spelling (left to msgspec).
fn rfc3339(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    // Microseconds stay exact in a float64 within these years.
    if !(1700..=2200).contains(&year) || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        micros = digits(&rest[1..=n])? * 10i64.pow(6 - n as u32);
        rest = &rest[1 + n..];
    }
    let offset = match rest {
        b"" | b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            (h * 60 + m) * 60 * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    // As timedelta.total_seconds(): exact microseconds, one correctly rounded division.
    Some((seconds * 1_000_000 + micros) as f64 / 1e6)
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

// -- columns -------------------------------------------------------------------------------

#[derive(Default)]
struct Interner {
    values: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, value: &str) -> u32 {
        let found = if self.values.len() <= SCANNED {
            self.values.iter().position(|v| v == value).map(|i| i as u32)
        } else {
            self.index.get(value).copied()
        };
        if let Some(id) = found {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.to_owned());
        self.index.insert(value.to_owned(), id);
        id
    }
}

/// A feature value (or prediction) of one row; strings are ids into the column's interner.
#[derive(Clone, Copy)]
enum Cell {
    Missing,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(u32),
}

impl Cell {
    fn of(value: &Value, strings: &mut Interner) -> Cell {
        match value {
            Value::Null | Value::Nested => Cell::Missing,
            Value::Bool(v) => Cell::Bool(*v),
            Value::Int(v) => Cell::Int(*v),
            Value::Float(v) => Cell::Float(*v),
            Value::Str(v) => Cell::Str(strings.id(v)),
        }
    }

    fn to_python<'py>(self, py: Python<'py>, strings: &Interner) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Cell::Missing => py.None().into_bound(py),
            Cell::Bool(v) => v.into_pyobject(py)?.to_owned().into_any(),
            Cell::Int(v) => v.into_pyobject(py)?.into_any(),
            Cell::Float(v) => v.into_pyobject(py)?.into_any(),
            Cell::Str(id) => PyString::new(py, &strings.values[id as usize]).into_any(),
        })
    }
}

struct Column {
    name: String,
    first_row: usize,
    cells: Vec<Cell>,
    strings: Interner,
}

/// One model's predictions of a batch, in input order; ids borrow from the input.
#[derive(Default)]
struct ModelColumns<'a> {
    model: String,
    rows: usize,
    timestamps: Vec<f64>,
    versions: Vec<u32>,
    version_names: Interner,
    ids: Vec<Option<Cow<'a, str>>>,
    latency_ms: Vec<f64>,
    errors: Vec<u8>,
    predictions: Vec<Cell>,
    prediction_strings: Interner,
    scores: Vec<f64>,
    columns: Vec<Column>,
    column_index: HashMap<String, usize>,
    // The column of the k-th feature of the previous row: rows of a model mostly list their
    // features in the same order, so a name is compared once instead of hashed.
    last_order: Vec<usize>,
}

impl ModelColumns<'_> {
    /// Adds the row's features; false on a name given twice.
    fn add_features(&mut self, features: &[(Cow<str>, Value)]) -> bool {
        let row = self.rows;
        for (position, (name, value)) in features.iter().enumerate() {
            let guess = self.last_order.get(position).copied();
            let index = match guess {
                Some(index) if self.columns[index].name == name.as_ref() => index,
                _ => {
                    let index = match self.column_index.get(name.as_ref()) {
                        Some(&index) => index,
                        None => {
                            self.columns.push(Column {
                                name: name.to_string(),
                                first_row: row,
                                cells: Vec::with_capacity(row + 1),
                                strings: Interner::default(),
                            });
                            self.column_index.insert(name.to_string(), self.columns.len() - 1);
                            self.columns.len() - 1
                        }
                    };
                    if position < self.last_order.len() {
                        self.last_order[position] = index;
                    } else {
                        self.last_order.push(index);
                    }
                    index
                }
            };
            let column = &mut self.columns[index];
            if column.cells.len() > row {
                return false;
            }
            column.cells.resize(row, Cell::Missing);
            let cell = Cell::of(value, &mut column.strings);
            column.cells.push(cell);
        }
        true
    }
}

/// What one line turned out to be.
enum Outcome {
    Prediction,
    LeftToPython,
    Unsure,
}

struct BatchDecoder<'a> {
    received_at: f64,
    max_features: usize,
    models: Vec<ModelColumns<'a>>,
    model_index: HashMap<String, usize>,
    features: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> BatchDecoder<'a> {
    fn line(&mut self, bytes: &'a [u8]) -> Outcome {
        let Ok(text) = std::str::from_utf8(bytes) else { return Outcome::Unsure };
        self.features.clear();
        let Some(fields) = fields(text, &mut self.features) else { return Outcome::Unsure };
        match &fields.kind {
            Some(Value::Str(kind)) if kind == "prediction" => {
                if self.prediction(fields) {
                    Outcome::Prediction
                } else {
                    Outcome::Unsure
                }
            }
            Some(Value::Str(kind)) if kind == "label" || kind == "infra" => Outcome::LeftToPython,
            _ => Outcome::Unsure,
        }
    }

    /// Appends a prediction to its model's columns; false when not sure it is valid.
    fn prediction(&mut self, fields: Fields<'a>) -> bool {
        let Some(Value::Str(model)) = fields.model else { return false };
        if !valid_model(&model) || self.features.len() > self.max_features {
            return false;
        }
        let timestamp = match fields.timestamp {
            None | Some(Value::Null) => self.received_at,
            Some(Value::Str(text)) => match rfc3339(&text) {
                Some(t) => t,
                None => return false,
            },
            Some(value) => match number(&value) {
                Some(t) if (0.0..MAX_UNIX_SECONDS).contains(&t) => t,
                _ => return false,
            },
        };
        let version: Cow<str> = match fields.model_version {
            None => Cow::Borrowed("unknown"),
            Some(Value::Str(v)) if within(&v, MAX_VERSION_CHARS) => v,
            Some(Value::Int(v)) => Cow::Owned(v.to_string()),
            _ => return false,
        };
        let id = match fields.id {
            None | Some(Value::Null) => None,
            Some(Value::Str(v)) if (1..=MAX_ID_CHARS).contains(&v.chars().count()) => Some(v),
            Some(Value::Int(v)) => Some(Cow::Owned(v.to_string())),
            _ => return false,
        };
        let latency = match fields.latency_ms {
            None | Some(Value::Null) => f64::NAN,
            Some(value) => match number(&value) {
                Some(v) if v >= 0.0 => v,
                _ => return false,
            },
        };
        let error = match fields.status {
            None => false,
            Some(Value::Str(s)) if s == "ok" => false,
            Some(Value::Str(s)) if s == "error" => true,
            _ => return false,
        };
        let prediction = match fields.prediction {
            None => Value::Null,
            Some(Value::Nested) => return false,
            Some(Value::Str(text)) if !within(&text, MAX_VALUE_CHARS) => return false,
            Some(value) => value,
        };
        let score = match fields.score {
            None | Some(Value::Null) => f64::NAN,
            Some(value) => match number(&value) {
                Some(v) => v,
                None => return false,
            },
        };
        let index = match self.model_index.get(model.as_ref()) {
            Some(&index) => index,
            None => {
                self.models.push(ModelColumns { model: model.to_string(), ..Default::default() });
                self.model_index.insert(model.to_string(), self.models.len() - 1);
                self.models.len() - 1
            }
        };
        let columns = &mut self.models[index];
        if !columns.add_features(&self.features) {
            return false;
        }
        columns.timestamps.push(timestamp);
        let version = columns.version_names.id(&version);
        columns.versions.push(version);
        columns.ids.push(id);
        columns.latency_ms.push(latency);
        columns.errors.push(u8::from(error));
        let prediction = Cell::of(&prediction, &mut columns.prediction_strings);
        columns.predictions.push(prediction);
        columns.scores.push(score);
        columns.rows += 1;
        true
    }
}

/// An event left to Python: its index in the input, and where its bytes start and end.
type Left = (usize, usize, usize);

/// Lines (input index, byte offset, bytes) -> columns per model and the events left to
/// Python; None when any line is not for this decoder to judge.
fn decode<'a>(
    lines: impl Iterator<Item = (usize, usize, &'a [u8])>,
    received_at: f64,
    max_event_bytes: usize,
    max_features: usize,
) -> Option<(Vec<ModelColumns<'a>>, Vec<Left>)> {
    let mut decoder = BatchDecoder {
        received_at,
        max_features,
        models: Vec::new(),
        model_index: HashMap::new(),
        features: Vec::new(),
    };
    let mut left = Vec::new();
    for (index, offset, bytes) in lines {
        if bytes.len() > max_event_bytes {
            return None;
        }
        match decoder.line(bytes) {
            Outcome::Prediction => {}
            Outcome::LeftToPython => left.push((index, offset, offset + bytes.len())),
            Outcome::Unsure => return None,
        }
    }
    for model in &mut decoder.models {
        let rows = model.rows;
        for column in &mut model.columns {
            column.cells.resize(rows, Cell::Missing);
        }
    }
    Some((decoder.models, left))
}

// -- Python --------------------------------------------------------------------------------

fn f64_bytes<'py>(py: Python<'py>, values: &[f64]) -> Bound<'py, PyBytes> {
    // SAFETY: any f64 slice is a valid byte slice of 8x its length, in native byte order.
    let bytes = unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), values.len() * 8) };
    PyBytes::new(py, bytes)
}

/// The feature columns of one model's predictions. Rows are those of the batch, in order.
#[pyclass(frozen, module = "service._native")]
struct NativeFeatures {
    rows: usize,
    columns: Vec<Column>,
    index: HashMap<String, usize>,
}

#[pymethods]
impl NativeFeatures {
    fn __len__(&self) -> usize {
        self.rows
    }

    /// Names of the features present (even as null) in one of the rows before `stop`, in
    /// the order they first appear.
    fn names(&self, stop: usize) -> Vec<String> {
        self.columns.iter().filter(|c| c.first_row < stop).map(|c| c.name.clone()).collect()
    }

    /// float64 bytes: for each name, its values from row `start` on; numbers as floats,
    /// booleans as 1/0, strings and missing values as NaN.
    fn numbers<'py>(&self, py: Python<'py>, names: Vec<String>, start: usize) -> Bound<'py, PyBytes> {
        let rows = self.rows.saturating_sub(start);
        let mut out = Vec::with_capacity(names.len() * rows);
        for name in &names {
            match self.index.get(name) {
                None => out.resize(out.len() + rows, f64::NAN),
                Some(&index) => {
                    out.extend(self.columns[index].cells[start.min(self.rows)..].iter().map(|cell| match *cell {
                        Cell::Int(v) => v as f64,
                        Cell::Float(v) => v,
                        Cell::Bool(v) => f64::from(u8::from(v)),
                        Cell::Missing | Cell::Str(_) => f64::NAN,
                    }))
                }
            }
        }
        f64_bytes(py, &out)
    }

    /// float64 bytes of each row's code in `vocabulary` (value -> code), from row `start` on,
    /// NaN where missing; None as soon as a value is not in it (the caller then encodes
    /// `values()`, adding the new ones in order of appearance).
    fn codes<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        vocabulary: &Bound<'py, PyDict>,
        start: usize,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let start = start.min(self.rows);
        let Some(&index) = self.index.get(name) else {
            return Ok(Some(f64_bytes(py, &vec![f64::NAN; self.rows - start])));
        };
        let column = &self.columns[index];
        // Each distinct value is looked up in the vocabulary once: strings by their id here,
        // the rest by type and bits.
        let mut string_codes: Vec<Option<f64>> = vec![None; column.strings.values.len()];
        let mut other_codes: HashMap<(u8, u64), f64> = HashMap::new();
        let mut out = Vec::with_capacity(self.rows - start);
        for cell in &column.cells[start..] {
            let known = match *cell {
                Cell::Missing => {
                    out.push(f64::NAN);
                    continue;
                }
                Cell::Str(id) => string_codes[id as usize],
                Cell::Bool(v) => other_codes.get(&(0, u64::from(v))).copied(),
                Cell::Int(v) => other_codes.get(&(1, v as u64)).copied(),
                Cell::Float(v) => other_codes.get(&(2, v.to_bits())).copied(),
            };
            let code = match known {
                Some(code) => code,
                None => {
                    let Some(code) = vocabulary.get_item(cell.to_python(py, &column.strings)?)? else {
                        return Ok(None);
                    };
                    let code: f64 = code.extract()?;
                    match *cell {
                        Cell::Str(id) => string_codes[id as usize] = Some(code),
                        Cell::Bool(v) => _ = other_codes.insert((0, u64::from(v)), code),
                        Cell::Int(v) => _ = other_codes.insert((1, v as u64), code),
                        Cell::Float(v) => _ = other_codes.insert((2, v.to_bits()), code),
                        Cell::Missing => {}
                    }
                    code
                }
            };
            out.push(code);
        }
        Ok(Some(f64_bytes(py, &out)))
    }

    /// The values of rows `start` to `stop` as Python objects, None where missing.
    fn values<'py>(&self, py: Python<'py>, name: &str, start: usize, stop: usize) -> PyResult<Bound<'py, PyList>> {
        let stop = stop.min(self.rows);
        let start = start.min(stop);
        match self.index.get(name) {
            None => PyList::new(py, (start..stop).map(|_| py.None())),
            Some(&index) => {
                let column = &self.columns[index];
                let values = column.cells[start..stop]
                    .iter()
                    .map(|cell| cell.to_python(py, &column.strings))
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, values)
            }
        }
    }
}

type Batch<'py> = (Bound<'py, PyList>, Vec<Left>);

fn to_python<'py>(py: Python<'py>, models: Vec<ModelColumns>, left: Vec<Left>) -> PyResult<Batch<'py>> {
    let batches = PyList::empty(py);
    for m in models {
        let versions: Vec<Bound<PyString>> = m.version_names.values.iter().map(|v| PyString::new(py, v)).collect();
        let versions = PyList::new(py, m.versions.iter().map(|&v| versions[v as usize].clone()))?;
        let ids = PyList::new(py, m.ids.iter().map(|id| id.as_deref()))?;
        let predictions =
            m.predictions.iter().map(|cell| cell.to_python(py, &m.prediction_strings)).collect::<PyResult<Vec<_>>>()?;
        let features = NativeFeatures { rows: m.rows, columns: m.columns, index: m.column_index };
        let batch = (
            m.model,
            f64_bytes(py, &m.timestamps),
            versions,
            ids,
            f64_bytes(py, &m.latency_ms),
            PyBytes::new(py, &m.errors),
            PyList::new(py, predictions)?,
            f64_bytes(py, &m.scores),
            Bound::new(py, features)?,
        );
        batches.append(batch)?;
    }
    Ok((batches, left))
}

fn is_blank(line: &[u8]) -> bool {
    // As Python's bytes.strip(): ASCII whitespace.
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'))
}

/// An NDJSON body: lines are numbered skipping blank ones, as `Validator.decode_lines` does;
/// the lines left to Python are given as (index, start, end) byte offsets into the body.
#[pyfunction]
fn decode_ndjson<'py>(
    py: Python<'py>,
    body: &[u8],
    received_at: f64,
    max_event_bytes: usize,
    max_features: usize,
) -> PyResult<Option<Batch<'py>>> {
    let decoded = py.detach(|| {
        let mut start = 0;
        let lines = memchr::memchr_iter(b'\n', body).chain([body.len()]).map(|end| {
            let line = (start, &body[start..end]);
            start = end + 1;
            line
        });
        let lines =
            lines.filter(|(_, line)| !is_blank(line)).enumerate().map(|(index, (start, line))| (index, start, line));
        decode(lines, received_at, max_event_bytes, max_features)
    });
    decoded.map(|(models, left)| to_python(py, models, left)).transpose()
}

/// Kafka record values, one event each (a missing or empty one makes the batch Python's);
/// the records left to Python are given as (index, 0, length).
#[pyfunction]
fn decode_records<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    received_at: f64,
    max_event_bytes: usize,
    max_features: usize,
) -> PyResult<Option<Batch<'py>>> {
    let mut records = Vec::with_capacity(values.len());
    for value in values.iter() {
        match value.cast_into::<PyBytes>() {
            Ok(bytes) if !is_blank(bytes.as_bytes()) => records.push(bytes),
            _ => return Ok(None),
        }
    }
    let slices: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
    let decoded = py.detach(|| {
        decode(slices.iter().enumerate().map(|(i, s)| (i, 0, *s)), received_at, max_event_bytes, max_features)
    });
    decoded.map(|(models, left)| to_python(py, models, left)).transpose()
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(decode_ndjson, module)?)?;
    module.add_function(wrap_pyfunction!(decode_records, module)?)?;
    module.add_class::<NativeFeatures>()?;
    // service/events.py trusts a build without it to drop a multiclass `scores` mapping, not give it back.
    module.add("GIVES_BACK_SCORES", true)?;
    // ... and to check each value for a `segment` key itself, where a build without it needs
    // Python to search every value for one first.
    module.add("GIVES_BACK_SEGMENTS", true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_python_reads_them() {
        // datetime.fromisoformat(...).timestamp() in Python gives these.
        assert_eq!(rfc3339("2026-11-28T08:00:00.123Z"), Some(1795852800.123));
        assert_eq!(rfc3339("2026-11-28T08:00:00+01:00"), Some(1795849200.0));
        assert_eq!(rfc3339("2024-02-29T00:00:00"), Some(1709164800.0));
        assert_eq!(rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(rfc3339("2026-11-28 08:00:00Z"), None);
        assert_eq!(rfc3339("2026-11-28T08:00:00.1234567Z"), None);
    }

    #[test]
    fn a_multiclass_scores_mapping_is_left_to_python() {
        let mut features = Vec::new();
        let scored = r#"{"kind": "prediction", "model": "m", "scores": {"a": 0.3, "b": 0.7}}"#;
        assert!(fields(scored, &mut features).is_none());
        let plain = r#"{"kind": "prediction", "model": "m", "score": 0.7, "other": {"a": 1}}"#;
        assert!(fields(plain, &mut features).is_some());
    }

    #[test]
    fn a_segment_is_left_to_python() {
        let mut features = Vec::new();
        let segmented = r#"{"kind": "prediction", "model": "m", "segment": "eu", "features": {"x": 1}}"#;
        assert!(fields(segmented, &mut features).is_none());
        let named = r#"{"kind": "prediction", "model": "m", "features": {"segment": "eu"}}"#;
        assert!(fields(named, &mut features).is_some());
    }
}

//! driftline's native drift-test kernels (`detectors._kernels`): the arithmetic of a test
//! done in one pass over sorted samples, where numpy needs a sort and several array passes;
//! and a sliding window's columns counted against a reference (`WindowTabulation`), which
//! gives the KS statistic without sorting the window at all.
//!
//! Results are bit-identical to `detectors.stattests`' numpy implementations, which remain
//! the fallback where this module is not built (windows are then sorted);
//! `tests/detectors/test_kernels.py` and `test_tabulation.py` hold them (and SciPy) to the
//! same results.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// `scipy.stats.ks_2samp`'s two-sided statistic before its p-value: the largest
/// `i/n1 - j/n2` either way, where i and j count each sample's values <= x, for x over the
/// values of both samples, the negative side clipped at 0 as SciPy does.
///
/// Both samples must be sorted ascending and hold no NaN (a NaN gives a meaningless
/// statistic, never a hang). The counts are taken after the last of each run of equal
/// values, where SciPy's `searchsorted(side="right")` takes them; each difference is
/// computed as SciPy computes it (two float divisions, one subtraction).
fn ks_statistic_sorted(first: &[f64], second: &[f64]) -> f64 {
    let (n1, n2) = (first.len(), second.len());
    let (size1, size2) = (n1 as f64, n2 as f64);
    // Every count's share, divided once and up front (the divisions are independent there,
    // so they overlap; in the merge each waited on the comparisons before it).
    let shares1: Vec<f64> = (0..=n1).map(|count| count as f64 / size1).collect();
    let shares2: Vec<f64> = (0..=n2).map(|count| count as f64 / size2).collect();
    let (mut i, mut j) = (0usize, 0usize);
    // Where the last values are taken, both counts are whole: a difference of exactly 0.
    let (mut lowest, mut highest) = (0.0f64, 0.0f64);
    while i < n1 || j < n2 {
        // The next value of the union, and every value equal to it in either sample.
        let value = if j == n2 || (i < n1 && first[i] <= second[j]) { first[i] } else { second[j] };
        let before = (i, j);
        while i < n1 && first[i] <= value {
            i += 1;
        }
        while j < n2 && second[j] <= value {
            j += 1;
        }
        if (i, j) == before {
            // Only a NaN compares false with itself: step over it so the merge ends.
            if i < n1 && first[i].is_nan() {
                i += 1;
            } else {
                j += 1;
            }
            continue;
        }
        let difference = shares1[i] - shares2[j];
        lowest = lowest.min(difference);
        highest = highest.max(difference);
    }
    // SciPy's choice between the two sides, which never returns -0.0.
    if -lowest > highest {
        -lowest
    } else {
        highest
    }
}

/// How many of `sorted`'s values are less than `value`.
fn count_less(sorted: &[f64], value: f64) -> usize {
    sorted.partition_point(|&x| x < value)
}

/// `value`'s bucket of `buckets` equal-width ones from `least`, `scale` buckets a unit (a NaN
/// product, from a scale of 0 for a range of 0 or an infinite one, is bucket 0).
fn bucket_of(value: f64, least: f64, scale: f64, buckets: usize) -> usize {
    // `as` saturates: below the least value, bucket 0.
    (((value - least) * scale) as usize).min(buckets - 1)
}

/// A missing value's cell (NaN, +/-inf, or a slot not yet filled).
const MISSING: u32 = u32::MAX;

/// One numerical column of a sliding window, counted against a reference's values.
///
/// The reference's K distinct values cut the line into 2K + 1 cells: below the first value,
/// at it, between it and the next, ... above the last. Each row of the window is counted in
/// its cell as it arrives and uncounted as it leaves, so the two samples' step functions are
/// known at every point where SciPy's `ks_2samp` evaluates them without sorting the window:
/// at a reference value, the counts through its cell; at window values strictly between two
/// reference values, the reference's count is constant, so the largest gap of that run is at
/// its last value (the counts through the open cell) or at the reference value before it.
struct CountedColumn {
    distinct: Vec<f64>,
    /// A guide to `distinct` by equal-width buckets over its range: bucket b's values are
    /// distinct[guide[b]..guide[b + 1]], so a value's search is over its bucket alone.
    guide: Vec<u32>,
    least: f64,
    scale: f64,
    /// Per cell, the share of the reference's values at or before it, as SciPy divides it.
    reference_shares: Vec<f64>,
    counts: Vec<u32>,
    /// Each window slot's cell.
    cells: Vec<u32>,
    missing: usize,
}

impl CountedColumn {
    fn new(reference: &[f64], capacity: usize) -> Self {
        let mut distinct: Vec<f64> = Vec::new();
        let mut through: Vec<usize> = Vec::new();
        for (index, &value) in reference.iter().enumerate() {
            match distinct.last() {
                Some(&last) if last == value => *through.last_mut().expect("a value was pushed") = index + 1,
                _ => {
                    distinct.push(value);
                    through.push(index + 1);
                }
            }
        }
        let size = reference.len() as f64;
        let mut reference_shares = Vec::with_capacity(2 * distinct.len() + 1);
        let mut before = 0usize;
        for &count in &through {
            reference_shares.push(before as f64 / size);
            reference_shares.push(count as f64 / size);
            before = count;
        }
        reference_shares.push(before as f64 / size);
        let cells = reference_shares.len();
        // About two buckets a distinct value; a value's bucket is a monotone function of it,
        // so every value of an earlier bucket is less than it and of a later one greater.
        let buckets = 2 * distinct.len();
        let (least, greatest) = (distinct[0], distinct[distinct.len() - 1]);
        let range = greatest - least;
        let scale = if range > 0.0 && range.is_finite() { buckets as f64 / range } else { 0.0 };
        let mut guide = vec![0u32; buckets + 1];
        for &value in &distinct {
            guide[bucket_of(value, least, scale, buckets) + 1] += 1;
        }
        for bucket in 0..buckets {
            guide[bucket + 1] += guide[bucket];
        }
        CountedColumn {
            distinct,
            guide,
            least,
            scale,
            reference_shares,
            counts: vec![0; cells],
            cells: vec![MISSING; capacity],
            missing: 0,
        }
    }

    fn cell_of(&self, value: f64) -> u32 {
        if !value.is_finite() {
            return MISSING;
        }
        let bucket = bucket_of(value, self.least, self.scale, self.guide.len() - 1);
        let (start, end) = (self.guide[bucket] as usize, self.guide[bucket + 1] as usize);
        let less = start + count_less(&self.distinct[start..end], value);
        // distinct[less] is the first value >= value; past the end, the last (< value).
        let equal = (self.distinct[less.min(self.distinct.len() - 1)] == value) as usize;
        (2 * less + equal) as u32
    }

    /// Reads the arrays a value's search touches once in order, which the prefetcher streams,
    /// before the searches read them in any order: between two batches of a window they are
    /// rarely in cache (tens of KB a column), and a cold search waits on each load. Worth it
    /// for a batch of at least 1/16 as many values as the reference has distinct ones (the
    /// arrays are ~3 cache lines per 16 distinct values); a smaller batch searches cold.
    fn warm(&self) {
        let mut touched = 0u32;
        for line in self.guide.chunks(16) {
            touched = touched.wrapping_add(line[0]);
        }
        for line in self.distinct.chunks(8) {
            touched = touched.wrapping_add(line[0].to_bits() as u32);
        }
        for line in self.counts.chunks(16) {
            touched = touched.wrapping_add(line[0]);
        }
        std::hint::black_box(touched);
    }

    /// Puts `values` in the slots from `next` on (round the window), uncounting the rows
    /// they replace once `held` reaches the capacity; `found` is scratch for their cells.
    ///
    /// The cells are all found first: each search is independent of the others, so their
    /// loads overlap.
    fn put(&mut self, values: &[f64], next: usize, held: usize, found: &mut Vec<u32>) {
        if values.len() * 16 >= self.distinct.len() {
            self.warm();
        }
        found.clear();
        found.extend(values.iter().map(|&value| self.cell_of(value)));
        let capacity = self.cells.len();
        let (mut slot, mut held) = (next, held);
        for &cell in found.iter() {
            if held == capacity {
                match self.cells[slot] {
                    MISSING => self.missing -= 1,
                    old => self.counts[old as usize] -= 1,
                }
            } else {
                held += 1;
            }
            match cell {
                MISSING => self.missing += 1,
                new => self.counts[new as usize] += 1,
            }
            self.cells[slot] = cell;
            slot = if slot + 1 == capacity { 0 } else { slot + 1 };
        }
    }

    /// `(statistic, present, missing, below, above)` of the `rows` held; the statistic is NaN
    /// when no value is present. `shares` is scratch for the window's count shares.
    fn summary(&self, rows: usize, shares: &mut Vec<f64>) -> (f64, usize, usize, usize, usize) {
        let present = rows - self.missing;
        let last = self.counts.len() - 1;
        let (below, above) = (self.counts[0] as usize, self.counts[last] as usize);
        if present == 0 {
            return (f64::NAN, 0, self.missing, below, above);
        }
        if shares.len() != present + 1 {
            let size = present as f64;
            shares.clear();
            shares.extend((0..=present).map(|count| count as f64 / size));
        }
        // An empty open cell repeats the difference at the reference value before it (or 0
        // at the start), and the last cell's is 0 (both counts whole): every cell is taken,
        // without a branch, starting from SciPy's 0 on either side.
        let (mut lowest, mut highest, mut seen) = (0.0f64, 0.0f64, 0usize);
        for (count, reference_share) in self.counts.iter().zip(&self.reference_shares) {
            seen += *count as usize;
            let difference = reference_share - shares[seen];
            lowest = if difference < lowest { difference } else { lowest };
            highest = if difference > highest { difference } else { highest };
        }
        // SciPy's choice between the two sides, which never returns -0.0.
        let statistic = if -lowest > highest { -lowest } else { highest };
        (statistic, present, self.missing, below, above)
    }
}

/// The numerical columns of a sliding window of `capacity` rows, each counted against its
/// reference column (sorted, finite, non-empty float64 arrays): rows are pushed as the window
/// takes them (the oldest leave once it is full), and `summaries` gives every column's KS
/// statistic against its reference (bit for bit `ks_statistic` of the reference and the
/// window's sorted finite values), with its present, missing, below-the-reference's-least
/// and above-its-greatest counts, in one pass over the reference's cells.
#[pyclass(module = "detectors._kernels")]
struct WindowTabulation {
    columns: Vec<CountedColumn>,
    capacity: usize,
    next: usize,
    rows: usize,
}

#[pymethods]
impl WindowTabulation {
    #[new]
    fn new(capacity: usize, references: Vec<PyBuffer<f64>>) -> PyResult<Self> {
        if capacity == 0 {
            return Err(PyValueError::new_err("capacity must be at least 1"));
        }
        let mut columns = Vec::with_capacity(references.len());
        for reference in &references {
            let values = sorted_values(reference, "reference")?;
            if values.iter().any(|value| !value.is_finite()) || values.windows(2).any(|pair| pair[0] > pair[1]) {
                return Err(PyValueError::new_err("reference is not sorted and finite"));
            }
            columns.push(CountedColumn::new(values, capacity));
        }
        Ok(WindowTabulation { columns, capacity, next: 0, rows: 0 })
    }

    /// Rows held (at most the capacity).
    #[getter]
    fn rows(&self) -> usize {
        self.rows
    }

    /// Appends rows: one float64 array per column, all of one length; past the capacity,
    /// the last `capacity` rows are kept, as the window keeps them.
    fn push(&mut self, py: Python<'_>, columns: Vec<PyBuffer<f64>>) -> PyResult<()> {
        if columns.len() != self.columns.len() {
            return Err(PyValueError::new_err(format!(
                "{} columns pushed to a tabulation of {}",
                columns.len(),
                self.columns.len()
            )));
        }
        let mut values = Vec::with_capacity(columns.len());
        for column in &columns {
            values.push(contiguous(column, "column")?);
        }
        let length = values.first().map_or(0, |column| column.len());
        if values.iter().any(|column| column.len() != length) {
            return Err(PyValueError::new_err("columns of different lengths"));
        }
        let skipped = length.saturating_sub(self.capacity);
        let (capacity, next, rows) = (self.capacity, self.next, self.rows);
        let counted = &mut self.columns;
        py.detach(|| {
            let mut found = Vec::new();
            for (column, new) in counted.iter_mut().zip(&values) {
                column.put(&new[skipped..], next, rows, &mut found);
            }
        });
        let kept = length - skipped;
        self.next = (next + kept) % capacity;
        self.rows = (rows + kept).min(capacity);
        Ok(())
    }

    /// Every column's `(statistic, present, missing, below, above)`, in the order given.
    fn summaries(&self, py: Python<'_>) -> Vec<(f64, usize, usize, usize, usize)> {
        let (columns, rows) = (&self.columns, self.rows);
        py.detach(|| {
            let mut shares = Vec::new();
            columns.iter().map(|column| column.summary(rows, &mut shares)).collect()
        })
    }
}

fn sorted_values<'a>(buffer: &'a PyBuffer<f64>, name: &str) -> PyResult<&'a [f64]> {
    let values = contiguous(buffer, name)?;
    if values.is_empty() {
        return Err(PyValueError::new_err(format!("{name} is empty")));
    }
    Ok(values)
}

fn contiguous<'a>(buffer: &'a PyBuffer<f64>, name: &str) -> PyResult<&'a [f64]> {
    // PyBuffer<f64> takes any 8-byte float format, whatever its byte order: a ">f8" array's
    // bytes read as native ones would be other numbers.
    let format = buffer.format().to_bytes();
    let foreign = if cfg!(target_endian = "little") { b">!".as_slice() } else { b"<".as_slice() };
    if format.first().is_some_and(|order| foreign.contains(order)) {
        return Err(PyValueError::new_err(format!("{name} is not in the machine's byte order")));
    }
    let pointer = buffer
        .as_slice_ptr()
        .ok_or_else(|| PyValueError::new_err(format!("{name} is not a contiguous float64 array")))?;
    // SAFETY: the buffer stays acquired (the array alive and its memory in place) while the
    // slice is used; the caller does not write to the arrays during the call.
    Ok(unsafe { pointer.as_ref() })
}

/// The two-sided KS statistic of two sorted float64 arrays (see `ks_statistic_sorted`).
#[pyfunction]
fn ks_statistic(py: Python<'_>, reference: PyBuffer<f64>, current: PyBuffer<f64>) -> PyResult<f64> {
    let first = sorted_values(&reference, "reference")?;
    let second = sorted_values(&current, "current")?;
    Ok(py.detach(|| ks_statistic_sorted(first, second)))
}

#[pymodule]
fn _kernels(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(ks_statistic, module)?)?;
    module.add_class::<WindowTabulation>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{count_less, ks_statistic_sorted, CountedColumn};

    fn sorted_finite(values: &[f64]) -> Vec<f64> {
        let mut kept: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        kept.sort_by(f64::total_cmp);
        kept
    }

    #[test]
    fn count_less_is_the_lower_bound() {
        let sorted = [1.0, 2.0, 2.0, 4.0];
        let counts: Vec<usize> = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 9.0].iter().map(|&v| count_less(&sorted, v)).collect();
        assert_eq!(counts, vec![0, 0, 1, 1, 3, 3, 4]);
        assert_eq!(count_less(&[3.0], 3.0), 0);
        assert_eq!(count_less(&[3.0], 3.5), 1);
    }

    /// A column of `capacity` slots with `window` put in it, and its summary.
    fn counted(reference: &[f64], window: &[f64], capacity: usize) -> (f64, usize, usize, usize, usize) {
        let mut column = CountedColumn::new(reference, capacity);
        let (mut next, mut held) = (0, 0);
        // In batches of 1 to 7 values, each batch wrapping round the window as it must.
        for batch in window.chunks(1 + window.len() % 7) {
            let batch = &batch[batch.len().saturating_sub(capacity)..];
            column.put(batch, next, held, &mut Vec::new());
            next = (next + batch.len()) % capacity;
            held = (held + batch.len()).min(capacity);
        }
        column.summary(held, &mut Vec::new())
    }

    #[test]
    fn counting_gives_the_merge_statistic_and_the_counts() {
        let reference = [1.0, 2.0, 2.0, 3.0, 5.0];
        let window = [2.0, f64::NAN, 0.5, 4.0, 4.0, 2.0, 9.0, f64::INFINITY, 2.5];
        let expected = ks_statistic_sorted(&reference, &sorted_finite(&window));
        assert_eq!(counted(&reference, &window, 20), (expected, 7, 2, 1, 1));
    }

    #[test]
    fn counting_matches_the_merge_on_many_samples_and_slides() {
        // A small deterministic generator: ties within and across samples, disjoint ranges.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for trial in 0..3000 {
            let (n, m) = (1 + (next() % 40) as usize, 1 + (next() % 60) as usize);
            let capacity = 1 + (next() % 30) as usize;
            let levels = [3u64, 10, 1000][trial % 3];
            let shift = (trial % 5) as f64 - 2.0;
            let reference = sorted_finite(&(0..n).map(|_| (next() % levels) as f64).collect::<Vec<_>>());
            let window: Vec<f64> =
                (0..m).map(|_| if next() % 17 == 0 { f64::NAN } else { (next() % levels) as f64 + shift }).collect();
            // The last `capacity` values are what the window holds.
            let held = &window[m.saturating_sub(capacity)..];
            let finite = sorted_finite(held);
            let (statistic, present, missing, below, above) = counted(&reference, &window, capacity);
            assert_eq!((present, missing), (finite.len(), held.len() - finite.len()), "trial {trial}");
            if present > 0 {
                assert_eq!(statistic, ks_statistic_sorted(&reference, &finite), "trial {trial}");
            }
            assert_eq!(below, finite.iter().filter(|&&v| v < reference[0]).count());
            assert_eq!(above, finite.iter().filter(|&&v| v > reference[n - 1]).count());
        }
    }

    #[test]
    fn an_empty_window_has_no_statistic() {
        let (statistic, present, missing, _, _) = counted(&[1.0], &[f64::NAN], 4);
        assert!(statistic.is_nan());
        assert_eq!((present, missing), (0, 1));
    }

    #[test]
    fn largest_gap_of_the_two_step_functions() {
        // At 2.0: 2/3 of the first sample and 0/2 of the second are <= it.
        assert_eq!(ks_statistic_sorted(&[1.0, 2.0, 5.0], &[3.0, 4.0]), 2.0 / 3.0);
        assert_eq!(ks_statistic_sorted(&[3.0, 4.0], &[1.0, 2.0, 5.0]), 2.0 / 3.0);
        assert_eq!(ks_statistic_sorted(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!(ks_statistic_sorted(&[1.0, 2.0], &[1.0, 2.0]).is_sign_positive());
    }

    #[test]
    fn ties_count_at_the_last_equal_value() {
        // Counted after each run of 1.0s, the two samples never differ.
        assert_eq!(ks_statistic_sorted(&[1.0, 1.0, 2.0], &[1.0, 1.0, 1.0, 1.0, 2.0, 2.0]), 0.0);
    }

    #[test]
    fn a_nan_ends_the_merge() {
        let statistic = ks_statistic_sorted(&[1.0, f64::NAN], &[f64::NAN, 2.0]);
        assert!(statistic.is_finite());
    }
}

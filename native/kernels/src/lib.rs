//! driftline's native drift-test kernels (`detectors._kernels`): the arithmetic of a test
//! done in one pass over sorted samples, where numpy needs a sort and several array passes.
//!
//! Results are bit-identical to `detectors.stattests`' numpy implementations, which remain
//! the fallback where this module is not built; `tests/detectors/test_kernels.py` holds the
//! two (and SciPy) to the same results.

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

fn sorted_values<'a>(buffer: &'a PyBuffer<f64>, name: &str) -> PyResult<&'a [f64]> {
    let pointer = buffer
        .as_slice_ptr()
        .ok_or_else(|| PyValueError::new_err(format!("{name} is not a contiguous float64 array")))?;
    if buffer.item_count() == 0 {
        return Err(PyValueError::new_err(format!("{name} is empty")));
    }
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ks_statistic_sorted;

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

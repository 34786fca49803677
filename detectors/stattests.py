"""The eight univariate drift tests, computed from column summaries.

Each test reproduces Evidently 0.7.23's implementation of the method of the same name
(``evidently/legacy/calculations/stattests``): the same statistic, the same default
threshold and the same comparison. What differs is where the work happens: the reference
side comes pre-sorted / pre-counted from a :class:`~detectors.profile.ReferenceProfile`, so
a test costs one sort of the current window at most.

A test is called as ``METHODS[name].score(reference, current, column_type)``; its verdict is
``METHODS[name].drifted(score, threshold)``.

>>> import numpy as np
>>> from detectors.profile import NumericalSummary
>>> ref = NumericalSummary.from_values(np.arange(100.0))
>>> cur = NumericalSummary.from_values(np.arange(100.0) + 50)
>>> round(METHODS["wasserstein"].score(ref, cur, "numerical"), 4)
1.7321
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from scipy import special

from detectors.summaries import CATEGORICAL, NUMERICAL, CategoricalSummary, ColumnSummary, NumericalSummary

_kernels: ModuleType | None
try:
    from detectors import _kernels
except ImportError:  # installed without a Rust toolchain: numpy computes the same statistics
    _kernels = None

# ---------------------------------------------------------------- shared building blocks


def both_numerical(ref: ColumnSummary, cur: ColumnSummary) -> tuple[NumericalSummary, NumericalSummary]:
    """The two samples of a numerical test; summaries of another kind are a TypeError naming them."""
    if isinstance(ref, NumericalSummary) and isinstance(cur, NumericalSummary):
        return ref, cur
    raise TypeError(f"a numerical test needs numerical summaries: a {type(ref).__name__} reference "
                    f"against a {type(cur).__name__} window")


def aligned_counts(ref: ColumnSummary, cur: ColumnSummary) -> tuple[list, np.ndarray, np.ndarray]:
    """The union of values seen in either sample, with each sample's count per value.

    Values only in the current window (unseen categories) get a reference count of 0.
    """
    if isinstance(ref, CategoricalSummary) and isinstance(cur, CategoricalSummary):
        return ref.aligned(cur)
    return _aligned_values(*both_numerical(ref, cur))


def _aligned_values(ref: NumericalSummary, cur: NumericalSummary) -> tuple[list, np.ndarray, np.ndarray]:
    ref_keys, ref_counts = ref.distinct_counts()
    cur_keys, cur_counts = cur.distinct_counts()
    keys = np.union1d(ref_keys, cur_keys)
    aligned_ref = np.zeros(keys.size, dtype=np.int64)
    aligned_cur = np.zeros(keys.size, dtype=np.int64)
    aligned_ref[np.searchsorted(keys, ref_keys)] = ref_counts
    aligned_cur[np.searchsorted(keys, cur_keys)] = cur_counts
    return keys.tolist(), aligned_ref, aligned_cur


def sturges_edges(size: int, low: float, high: float, integer: bool = False) -> np.ndarray:
    """``np.histogram_bin_edges(sample, "sturges")`` from the sample's size, min and max only.

    ``integer``: the sample is an integer array, whose bins numpy makes at least 1 wide (so
    300,000 + 300,000 values 0..20 get 20 bins, not 21 of 0.99)."""
    first, last = low, high
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (high - low) / (np.log2(size) + 1.0)
    if integer and 0 < width < 1:
        width = 1.0
    n_bins = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def histogram_sorted(ordered: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` of sorted values, by binary search of the edges.

    Bins are half-open ``[e_i, e_i+1)`` except the last, which is closed, as in numpy.
    """
    below = np.searchsorted(ordered, edges, side="left")
    counts = np.diff(below)
    counts[-1] = np.searchsorted(ordered, edges[-1], side="right") - below[-2]
    return counts


def binned_shares(ref: ColumnSummary, cur: ColumnSummary, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: each sample's share per bin.

    Numerical columns with more than 20 distinct reference values are binned with Sturges'
    rule over both samples together (as integers when both are: Evidently bins the two
    concatenated, an integer array only then); otherwise every distinct value is its own
    bin. With ``fill_zeroes`` (PSI, KL) empty bins get a small share so the logarithms stay
    finite.
    """
    if isinstance(ref, NumericalSummary) and ref.n_distinct > 20:
        ref, cur = both_numerical(ref, cur)
        low = min(ref.sorted_values[0], cur.sorted_values[0])
        high = max(ref.sorted_values[-1], cur.sorted_values[-1])
        edges = sturges_edges(ref.n + cur.n, low, high, ref.integer and cur.integer)
        ref_counts = histogram_sorted(ref.sorted_values, edges)
        cur_counts = histogram_sorted(cur.sorted_values, edges)
    else:
        _, ref_counts, cur_counts = aligned_counts(ref, cur)
    ref_shares = ref_counts / ref.n
    cur_shares = cur_counts / cur.n
    if fill_zeroes:
        for shares in (ref_shares, cur_shares):
            smallest = shares[shares != 0].min()
            shares[shares == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return ref_shares, cur_shares


def wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """First Wasserstein distance of two sorted samples (``scipy.stats.wasserstein_distance``).

    SciPy integrates ``|F_u - F_v|`` over x, which needs the two samples merged (a sort).
    The same area is the integral over q in (0, 1] of ``|Q_u(q) - Q_v(q)|``, the quantile
    functions, with ``Q_u(q) = u[ceil(q*n) - 1]``; both are step functions whose steps
    depend on the sizes only. So the steps (which order statistics meet, and over what share
    of q) are worked out once per ``(n, m)`` and cached (a streaming window and its
    reference keep their sizes), and a call is two gathers, a subtraction, an absolute value
    and a weighted sum: no sort. Where one size divides the other, each order statistic of
    the smaller sample simply meets a run of the larger's, and there is no grid at all.
    Results equal SciPy's up to rounding (~1e-15 relative).
    """
    n, m = u.size, v.size
    if m % n == 0 or n % m == 0:
        # One size divides the other (a window of 10,000 and a reference of 1,000 or 5,000):
        # order statistic i of the smaller sample meets the k = large/small ones of the
        # larger from i*k on, each over a share 1/large of q: no grid to gather through
        # (40 -> 31 us for 5,000 and 10,000 values).
        small, large = (u, v) if n <= m else (v, u)
        gaps = large - np.repeat(small, large.size // small.size)
        np.abs(gaps, out=gaps)
        return float(gaps.sum()) / large.size
    u_index, v_index, weights = _quantile_grid(n, m)
    gaps = u[u_index]
    gaps -= v[v_index]
    # Not np.dot: OpenBLAS would run it on a second thread that then spins, costing a third
    # of the engine's CPU time on a 2-core machine for nothing. (A pairwise sum, too.)
    np.abs(gaps, out=gaps)
    gaps *= weights
    return float(gaps.sum())


def _quantile_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The steps of ``Q_u - Q_v``: per step the index into u, into v, and its width in q."""
    if n + m > _QUANTILE_GRID_MAX_CACHED:  # ~24 bytes per step: too big to keep 16 of
        return _build_quantile_grid(n, m)  # linear arithmetic, still no sort
    return _cached_quantile_grid(n, m)


def _build_quantile_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # In units of 1/(n*m), Q_u steps at i*m (i = 1..n) and Q_v at j*n (j = 1..m). Each of
    # these breakpoints ends a step that starts at the largest breakpoint before it, of
    # either sample; the sum does not depend on the order of the steps, so no merge is
    # needed. Over u's step ending at i*m, v's index is ceil(i*m/n) - 1 = (i*m - 1) // n.
    v_at_u, below = _divmod(np.arange(m - 1, n * m, m, dtype=np.int64), n)
    u_widths = np.minimum(below + 1, m)  # back to the previous breakpoint, u's or v's
    # Over v's step ending at j*n, u's index is ceil(j*n/m) - 1 = (j*n) // m unless m
    # divides j*n: then u's breakpoint is the same point and took the step (width 0 here;
    # gcd(n, m) of them, a third of all steps for a window twice the reference's size).
    u_at_v, below = _divmod(np.arange(n, n * m + 1, n, dtype=np.int64), m)
    kept = np.flatnonzero(below)
    # Indices as intp: numpy converts any other integer type before gathering (2x the time).
    grid = (np.concatenate((np.arange(n), u_at_v[kept])).astype(np.intp),
            np.concatenate((v_at_u, kept)).astype(np.intp),
            np.concatenate((u_widths, np.minimum(below[kept], n))) / (n * m))
    for array in grid:  # shared through the cache
        array.flags.writeable = False
    return grid


def _divmod(values: np.ndarray, divisor: int) -> tuple[np.ndarray, np.ndarray]:
    # numpy divides an integer array by a scalar fast (libdivide) but not its % or divmod.
    quotient = values // divisor
    return quotient, values - quotient * divisor


_QUANTILE_GRID_MAX_CACHED = 1 << 16  # n + m; the cache holds at most 16 x 1.5 MB
_cached_quantile_grid = functools.lru_cache(maxsize=16)(_build_quantile_grid)


# ---------------------------------------------------------------- the tests


# KS p-values: exact ones by (n_ref, n_cur, h), asymptotic ones by (n_ref, n_cur, statistic,
# None). SciPy's exact two-sample p-value costs milliseconds and depends on the sizes and on
# h = round(statistic * lcm(n, m)) alone (the statistic is a multiple of 1/lcm, up to
# rounding); a streaming window has a fixed size and its statistic takes few distinct
# values, so most checks hit. Keyed by h, not the statistic: i/n - j/m rounds differently
# for different (i, j) of the same h (0.5 - 0.2 and 0.4 - 0.1), which missed.
_KS_PVALUES: dict[tuple, float] = {}
_KS_PVALUES_MAX = 65_536


@functools.cache
def _scipy_ks() -> tuple[Callable, Callable | None]:
    """SciPy's ``ks_2samp`` and its exact p-value from the statistic and sizes.

    ``ks_2samp`` comes without its decorators (axis and NaN handling, renamed arguments): ~0.5
    ms a call of argument inspection, as long as the exact p-value of two 1,000-value samples
    itself; the samples here are 1-D, sorted and finite. ``_attempt_exact_2kssamp`` is private:
    None where a SciPy moved it, and ``ks_2samp`` then computes every p-value. Tests hold both
    to the public ``ks_2samp``. Imported on first use, like every scipy.stats function here:
    scipy.stats costs ~45 MB and ~1 s at import, which an idle sidecar need not pay.
    """
    import scipy.stats  # noqa: PLC0415

    try:
        # scipy-stubs types the public API only.
        from scipy.stats._stats_py import _attempt_exact_2kssamp  # type: ignore[attr-defined]  # noqa: PLC0415
    except ImportError:
        _attempt_exact_2kssamp = None
    return inspect.unwrap(scipy.stats.ks_2samp), _attempt_exact_2kssamp


def load_scipy() -> None:
    """Import what the KS p-values take from SciPy now (scipy.stats: ~0.7 s of CPU and ~45 MB),
    for a caller that has the time, rather than at the first KS test, which that would stall."""
    _scipy_ks()


# Up to this many values in the larger sample, ks_2samp's mode "auto" computes the exact
# p-value (its MAX_AUTO_N), with _attempt_exact_2kssamp from the statistic and the sizes alone.
KS_EXACT_MAX_N = 10_000


def ks_statistic(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """The two-sided KS statistic with ``scipy.stats.ks_2samp``'s arithmetic: the largest
    ``i/n1 - j/n2`` either way, i and j counting each sample's values <= x, for x over both
    samples (bit-identical to it). Both samples are sorted, finite, non-empty, contiguous
    float64 arrays.

    SciPy finds i and j by two binary searches per value. Both samples are sorted already,
    so a linear merge of the two gives them: natively where ``detectors._kernels`` is built
    (one pass: 10 us of CPU for 1,000 and 1,000 values where numpy takes 46 on the same
    machine), else with numpy (:func:`ks_statistic_numpy`).
    """
    if _kernels is not None:
        return _kernels.ks_statistic(ref_sorted, cur_sorted)
    return ks_statistic_numpy(ref_sorted, cur_sorted)


def ks_statistic_numpy(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """:func:`ks_statistic` with numpy: one stable merge of the two sorted runs (timsort:
    linear) and a running count give i and j, taken at the last of each run of equal values
    (where there are ties): 110 -> 62 us for 1,000 and 1,000 values, 480 -> 191 us for
    1,000 and 10,000."""
    n1, n2 = ref_sorted.size, cur_sorted.size
    data_all = np.concatenate([ref_sorted, cur_sorted])
    order = np.argsort(data_all, kind="stable")
    merged = data_all[order]
    ref_counts = np.cumsum(order < n1)
    all_counts = np.arange(1, n1 + n2 + 1)
    distinct = merged[1:] != merged[:-1]
    if not distinct.all():  # ties: the counts after the last of each run of equal values
        last = np.flatnonzero(np.concatenate((distinct, [True])))
        ref_counts, all_counts = ref_counts[last], last + 1
    cddiffs = ref_counts / n1 - (all_counts - ref_counts) / n2
    lowest, highest = -cddiffs.min(), cddiffs.max()
    # SciPy's choice between the two sides (highest >= 0: the last difference is 0; never -0.0).
    return float(lowest if lowest > highest else highest)


def ks_pvalue(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> float:
    ref, cur = both_numerical(ref, cur)
    statistic = cur.ks_statistic_against(ref)  # a window counted against this reference has it
    if statistic is None:
        statistic = ks_statistic(ref.sorted_values, cur.sorted_values)
    return ks_pvalue_of_statistic(statistic, ref, cur)


def ks_pvalue_of_statistic(statistic: float, ref: NumericalSummary, cur: NumericalSummary) -> float:
    """``scipy.stats.ks_2samp(ref.sorted_values, cur.sorted_values).pvalue``, given its
    statistic: exact up to 10,000 values a sample where SciPy's exact computation succeeds,
    else asymptotic (which alone reads the values)."""
    n1, n2 = ref.n, cur.n
    exact_key = None
    if max(n1, n2) <= KS_EXACT_MAX_N:
        # _attempt_exact_2kssamp's h; Python's round, like numpy's, rounds half to even.
        exact_key = (n1, n2, round(statistic * (n1 // math.gcd(n1, n2) * n2)))
        pvalue = _KS_PVALUES.get(exact_key)
        if pvalue is not None:
            return pvalue
    asymptotic_key = (n1, n2, statistic, None)
    pvalue = _KS_PVALUES.get(asymptotic_key)
    if pvalue is not None:
        return pvalue
    ks_2samp, _attempt_exact_2kssamp = _scipy_ks()
    exact, exact_pvalue = False, math.nan
    if _attempt_exact_2kssamp is not None and exact_key is not None:
        # What ks_2samp does with its statistic, without recomputing it (~0.6 ms).
        exact, _, exact_pvalue = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), statistic, "two-sided")
    if len(_KS_PVALUES) >= _KS_PVALUES_MAX:
        _KS_PVALUES.clear()
    if exact and exact_key is not None:
        pvalue = _KS_PVALUES[exact_key] = float(exact_pvalue)
    else:  # SciPy's asymptotic p-value, which depends on the statistic itself
        pvalue = _KS_PVALUES[asymptotic_key] = float(ks_2samp(ref.sorted_values, cur.sorted_values).pvalue)
    return pvalue


def chisquare_pvalue(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> float:
    _, ref_counts, cur_counts = aligned_counts(ref, cur)
    if ref_counts.size < 2:
        return 1.0  # one category: no degrees of freedom (SciPy and Evidently give NaN)
    expected = ref_counts * (cur.n / ref.n)
    # scipy.stats.chisquare's own arithmetic, without its ~1.5 ms of argument handling.
    if isinstance(ref, CategoricalSummary) and ref_counts.size == len(ref.categories) and ref.all_counted:
        # every category is the reference's and counted there: none expects 0, nothing to silence
        statistic = ((cur_counts - expected) ** 2 / expected).sum()
    else:
        with np.errstate(divide="ignore"):  # an unseen category expects 0: statistic inf, p-value 0
            statistic = ((cur_counts - expected) ** 2 / expected).sum()
    return float(special.chdtrc(expected.size - 1, statistic))


def z_pvalue(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> float:
    """Two-proportion Z-test on the share of values other than the smallest value seen."""
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    if ref.n_distinct == 1 and cur.n_distinct == 1 and np.count_nonzero(ref_counts * cur_counts) == 1:
        return 1.0
    try:
        first = min(range(len(keys)), key=keys.__getitem__)
    except TypeError:  # mixed types that do not order: fall back to their text form
        first = min(range(len(keys)), key=lambda index: str(keys[index]))
    n1, n2 = ref.n, cur.n
    p1 = float(n1 - ref_counts[first]) / n1
    p2 = float(n2 - cur_counts[first]) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - special.ndtr(np.abs(z))))  # stats.norm.cdf is special.ndtr


def wasserstein_normed(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> float:
    """Wasserstein distance divided by the reference's standard deviation (at least 0.001)."""
    ref, cur = both_numerical(ref, cur)
    return wasserstein_sorted(ref.sorted_values, cur.sorted_values) / max(ref.std, 0.001)


def jensenshannon_distance(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> float:
    ref_shares, cur_shares = binned_shares(ref, cur, fill_zeroes=False)
    from scipy.spatial import distance  # noqa: PLC0415  (on first use, see _scipy_ks)

    return float(distance.jensenshannon(ref_shares, cur_shares))


def psi(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> float:
    ref_shares, cur_shares = binned_shares(ref, cur, fill_zeroes=True)
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))


def kl_divergence(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> float:
    ref_shares, cur_shares = binned_shares(ref, cur, fill_zeroes=True)
    from scipy.stats import entropy  # noqa: PLC0415  (on first use, see _scipy_ks)

    return float(entropy(ref_shares, cur_shares))


def hellinger_distance(ref: ColumnSummary, cur: ColumnSummary, column_type: str) -> float:
    """Categorical: over category shares. Numerical: over density histograms with Sturges
    bins laid over the *distinct* values of both samples (integers when both samples are),
    as Evidently does."""
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    if column_type == CATEGORICAL:
        affinity = float(np.sum(np.sqrt((ref_counts / ref.n) * (cur_counts / cur.n))))
    else:
        ref, cur = both_numerical(ref, cur)
        edges = sturges_edges(len(keys), keys[0], keys[-1], ref.integer and cur.integer)
        ref_density = _density(histogram_sorted(ref.sorted_values, edges), edges)
        cur_density = _density(histogram_sorted(cur.sorted_values, edges), edges)
        bin_width = (edges.max() - edges.min()) / (len(edges) - 1)
        affinity = float(np.sum(np.sqrt(ref_density * cur_density) * bin_width))
    return math.sqrt(1 - min(max(affinity, 0.0), 1.0))


def _density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return counts / np.diff(edges) / counts.sum()


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Method:
    """A drift test: its score function, what the score is and when it means drift."""

    name: str
    score: Callable[[ColumnSummary, ColumnSummary, str], float]
    default_threshold: float
    column_types: tuple[str, ...]
    score_is_p_value: bool
    drift_below_inclusive: bool = False

    def drifted(self, score: float, threshold: float) -> bool:
        """p-values drift when small (KS: ``<=``, chi-square and Z: ``<``), distances when ``>=``."""
        if not self.score_is_p_value:
            return score >= threshold
        return score <= threshold if self.drift_below_inclusive else score < threshold

    def check_threshold(self, threshold: float) -> None:
        """Raise ValueError unless ``threshold`` can be compared with this method's score: a
        p-value in (0, 1], or a finite distance >= 0."""
        if self.score_is_p_value and not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold {threshold:g} is not a p-value in (0, 1], which method {self.name!r} needs")
        if not self.score_is_p_value and not 0.0 <= threshold < math.inf:
            raise ValueError(f"threshold {threshold:g} is not a finite distance >= 0, which method {self.name!r} needs")

    @property
    def no_drift_score(self) -> float:
        """The score reported when a sample has no values to test: nothing to see."""
        return 1.0 if self.score_is_p_value else 0.0


BOTH = (NUMERICAL, CATEGORICAL)

# Allowed column types are Evidently's: for an explicitly chosen method, "ks" and
# "wasserstein" take numerical columns only, "chisquare" and "z" categorical only (``auto``
# still uses chi-square and Z on numerical columns with few distinct values, as Evidently does).
METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("ks", ks_pvalue, 0.05, (NUMERICAL,), True, drift_below_inclusive=True),
        Method("chisquare", chisquare_pvalue, 0.05, (CATEGORICAL,), True),
        Method("z", z_pvalue, 0.05, (CATEGORICAL,), True),
        Method("wasserstein", wasserstein_normed, 0.1, (NUMERICAL,), False),
        Method("jensenshannon", jensenshannon_distance, 0.1, BOTH, False),
        Method("psi", psi, 0.1, BOTH, False),
        Method("hellinger", hellinger_distance, 0.1, BOTH, False),
        Method("kl_div", kl_divergence, 0.1, BOTH, False),
    )
}

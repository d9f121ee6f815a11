//! Rows along one axis of a C-order tensor.
//!
//! A shape `(d0, ..., d_{k-1}, C, d_{k+1}, ...)` with the axis `k` of length `C` is seen as
//! `outer x C x inner` with `outer = d0...d_{k-1}` and `inner = d_{k+1}...`; row `r` (of
//! `outer * inner`) holds the elements `base(r) + c * inner` for `c < C`. Row `r` corresponds to
//! flat position `r` of the shape with the axis removed, in C order.

use crate::float::Float;

/// The `outer x len x inner` decomposition of a shape around one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisLayout {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the axis.
    pub len: usize,
    /// Product of the dimensions after the axis (the stride of the axis).
    pub inner: usize,
}

impl AxisLayout {
    /// The layout of `shape` around `axis` (which must be `< shape.len()`).
    pub fn new(shape: &[usize], axis: usize) -> Self {
        AxisLayout {
            outer: shape[..axis].iter().product(),
            len: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        }
    }

    /// Number of rows (`outer * inner`).
    #[inline]
    pub fn rows(&self) -> usize {
        self.outer * self.inner
    }

    /// Flat index of element 0 of row `r`.
    #[inline]
    pub fn base(&self, r: usize) -> usize {
        let (o, i) = (r / self.inner.max(1), r % self.inner.max(1));
        o * self.len * self.inner + i
    }

    /// Flat index of element `c` of row `r`.
    #[inline]
    pub fn at(&self, r: usize, c: usize) -> usize {
        self.base(r) + c * self.inner
    }

    /// Copies row `r` of `data` into `row` (length `len`).
    #[inline]
    pub fn gather<T: Copy>(&self, data: &[T], r: usize, row: &mut [T]) {
        let b = self.base(r);
        if self.inner == 1 {
            row.copy_from_slice(&data[b..b + self.len]);
        } else {
            for (c, v) in row.iter_mut().enumerate() {
                *v = data[b + c * self.inner];
            }
        }
    }

    /// Writes `row` into row `r` of `data`.
    #[inline]
    pub fn scatter<T: Copy>(&self, row: &[T], r: usize, data: &mut [T]) {
        let b = self.base(r);
        if self.inner == 1 {
            data[b..b + self.len].copy_from_slice(row);
        } else {
            for (c, v) in row.iter().enumerate() {
                data[b + c * self.inner] = *v;
            }
        }
    }
}

/// `max(row)` and `log(sum(exp(row - max)))`: `max + lse_shifted` is the log-sum-exp.
///
/// The shift by the maximum keeps every exponent `<= 0`. A row whose maximum is `-inf` (all
/// `-inf`) or `+inf` gives NaN, as in PyTorch.
#[inline]
pub fn logsumexp_parts<T: Float>(row: &[T]) -> (T, T) {
    let m = row.iter().fold(T::neg_infinity(), |a, &b| if b > a || b.is_nan() { b } else { a });
    let s = crate::kernels::sum::sum_by(row.len(), |c| (row[c] - m).exp().acc());
    (m, T::from_acc(s.ln()))
}

/// `log_softmax` of one row, in place: `x - max - log(sum(exp(x - max)))`.
#[inline]
pub fn log_softmax_row<T: Float>(row: &mut [T]) {
    let (m, l) = logsumexp_parts(row);
    for v in row.iter_mut() {
        *v = *v - m - l;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_rows_cover_every_element_once() {
        let shape = [2, 3, 4, 5];
        let l = AxisLayout::new(&shape, 1);
        assert_eq!((l.outer, l.len, l.inner), (2, 3, 20));
        let mut seen = vec![0u8; 120];
        for r in 0..l.rows() {
            for c in 0..l.len {
                seen[l.at(r, c)] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
    }

    #[test]
    fn log_softmax_is_stable() {
        // [1000, 0, -1000] -> [0, -1000, -2000] (exp(-1000) underflows to 0 in the sum)
        let mut r = [1000.0f64, 0.0, -1000.0];
        log_softmax_row(&mut r);
        assert_eq!(r, [0.0, -1000.0, -2000.0]);
        let mut all_neg_inf = [f64::NEG_INFINITY; 2];
        log_softmax_row(&mut all_neg_inf);
        assert!(all_neg_inf[0].is_nan());
    }
}

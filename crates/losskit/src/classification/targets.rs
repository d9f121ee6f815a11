//! The class-index machinery of PyTorch's classification losses ([`nll`](fn@super::nll),
//! [`cross_entropy`](fn@super::cross_entropy)): the class dimension, the shape of index
//! targets, `ignore_index`, per-class weights and the weighted-mean denominator. Both losses
//! go through this module, so they apply exactly the same rules.
//!
//! Layout: an input `(C)` is one unbatched sample (class dimension 0, loss shape `()`); an
//! input `(N, C, d1, ..., dK)` has `N * d1 * ... * dK` rows along its class dimension 1 and the
//! loss shape `(N, d1, ..., dK)`. Row `r` is flat position `r` of that loss shape.

use crate::error::{LossError, Result};
use crate::float::Float;
use crate::grad::Upstream;
use crate::kernels::axis::AxisLayout;
use crate::kernels::sum::sum_by;
use crate::kernels::xent::{IndexClasses, IndexCots};
use crate::reduction::{reduce, reduce_cot, reduce_summed, Reduction};
use crate::tensor::{fmt_shape, Tensor, View};

/// The rows of a classification input along its class dimension.
#[derive(Clone, Debug)]
pub(crate) struct ClassRows {
    /// The input seen as rows along the class dimension.
    pub(crate) layout: AxisLayout,
    /// The shape of the unreduced loss: the input's shape without the class dimension.
    pub(crate) out_shape: Vec<usize>,
}

impl ClassRows {
    /// The rows of an input of shape `(C)` or `(N, C, d1, ..., dK)`; a 0-d input is an error.
    pub(crate) fn new(input_shape: &[usize]) -> Result<Self> {
        match input_shape.len() {
            0 => Err(LossError::shape("input", "(C), (N, C) or (N, C, d1, ..., dK): a class dimension", input_shape)),
            1 => Ok(ClassRows { layout: AxisLayout::new(input_shape, 0), out_shape: Vec::new() }),
            _ => {
                let mut out_shape = input_shape.to_vec();
                out_shape.remove(1);
                Ok(ClassRows { layout: AxisLayout::new(input_shape, 1), out_shape })
            }
        }
    }

    /// The number of classes `C`.
    #[inline]
    pub(crate) fn classes(&self) -> usize {
        self.layout.len
    }
}

/// The position of the first class id outside `[0, classes)` that is not `ignore`, if any.
///
/// A branch-free test, vectorised ([`first_failing`](crate::kernels::scan::first_failing)): an
/// early-exit loop stays scalar, and took a tenth of nll's time.
pub(crate) fn first_bad_class(ids: &[i64], classes: usize, ignore: Option<i64>) -> Option<usize> {
    let (c, skips, skip) = (classes as i64, ignore.is_some(), ignore.unwrap_or(0));
    crate::kernels::scan::first_failing(ids, move |t: i64| (skips & (t == skip)) | ((t >= 0) & (t < c)))
}

/// The per-class weight as a slice, checked to have shape `(C)` exactly.
pub(crate) fn class_weight<'w, T: Float>(weight: Option<&'w View<'_, T>>, classes: usize) -> Result<Option<&'w [T]>> {
    match weight {
        None => Ok(None),
        Some(w) if w.shape() == [classes] => Ok(Some(w.data())),
        Some(w) => Err(LossError::shape(
            "weight",
            format!("{}: one weight per class ({classes} classes)", fmt_shape(&[classes])),
            w.shape(),
        )),
    }
}

/// Index targets checked against an input: each row's class (none when it is ignored), the
/// class weights, and the denominator of the weighted mean.
#[derive(Clone, Debug)]
pub(crate) struct IndexTargets<'a, T> {
    /// The input's rows.
    pub(crate) rows: ClassRows,
    targets: &'a [i64],
    ignore_index: i64,
    weight: Option<&'a [T]>,
    /// `sum(w[target])` over the rows that are not ignored (their count without weights).
    denominator: f64,
}

/// Index targets whose shape and class weights are checked but whose class ids are not yet:
/// [`check`](Self::check) scans the ids, or a kernel that reads every id anyway checks them in
/// its own pass and hands what it found to [`checked`](Self::checked) (nll's gather: a separate
/// scan of the ids cost it about a fifth of its time).
pub(crate) struct UncheckedTargets<'a, T>(IndexTargets<'a, T>);

impl<'a, T: Float> UncheckedTargets<'a, T> {
    /// Checks `target` against an input of shape `input_shape`: shape `()` for a `(C)` input,
    /// `(N, d1, ..., dK)` for `(N, C, d1, ..., dK)`; `weight` of shape `(C)`.
    ///
    /// (PyTorch's forward also takes a `(1)` target for a `(C)` input, but its backward and its
    /// label smoothing then fail; the contract keeps to `()`.)
    pub(crate) fn new(
        input_shape: &[usize],
        target: &'a View<'_, i64>,
        weight: Option<&'a View<'_, T>>,
        ignore_index: i64,
    ) -> Result<Self> {
        let rows = ClassRows::new(input_shape)?;
        let ts = target.shape();
        let fits = ts == rows.out_shape.as_slice();
        if !fits {
            let expected = if input_shape.len() == 1 {
                "() (a single class index) for an unbatched (C) input".to_string()
            } else {
                format!(
                    "{}: the shape of `input` {} without its class dimension 1",
                    fmt_shape(&rows.out_shape),
                    fmt_shape(input_shape)
                )
            };
            return Err(LossError::shape("target", expected, ts));
        }
        let weight = class_weight(weight, rows.classes())?;
        Ok(UncheckedTargets(IndexTargets { rows, targets: target.data(), ignore_index, weight, denominator: f64::NAN }))
    }

    /// The input's rows.
    pub(crate) fn rows(&self) -> &ClassRows {
        &self.0.rows
    }

    /// The class ids, one per row, not checked.
    pub(crate) fn ids(&self) -> &'a [i64] {
        self.0.targets
    }

    /// The id of the rows to skip.
    pub(crate) fn ignore_index(&self) -> i64 {
        self.0.ignore_index
    }

    /// The per-class weights, if given.
    pub(crate) fn weight(&self) -> Option<&'a [T]> {
        self.0.weight
    }

    /// Every id checked to lie in `[0, C)` or equal `ignore_index`.
    pub(crate) fn check(self) -> Result<IndexTargets<'a, T>> {
        let (ids, ignore) = (self.0.targets, self.0.ignore_index);
        let first_bad = first_bad_class(ids, self.0.rows.classes(), Some(ignore));
        let kept = || {
            crate::kernels::simd::dispatch(
                #[inline(always)]
                || ids.iter().map(|&t| usize::from(t != ignore)).sum::<usize>(),
            )
        };
        self.checked(first_bad, kept)
    }

    /// The targets, given what a caller's own pass over every id found: the position of the
    /// first id outside `[0, C)` that is not `ignore_index` (an error naming it), else the
    /// number of ids that are not `ignore_index` (called only then; with weights, the
    /// denominator is their weights' sum instead, from one more pass over the ids).
    pub(crate) fn checked(self, first_bad: Option<usize>, kept: impl FnOnce() -> usize) -> Result<IndexTargets<'a, T>> {
        let mut it = self.0;
        let (ids, ignore) = (it.targets, it.ignore_index);
        if let Some(position) = first_bad {
            return Err(LossError::IndexOutOfRange {
                arg: "target".into(),
                index: ids[position],
                position,
                valid: format!("0 <= index < {} or == ignore_index {ignore}", it.rows.classes()),
            });
        }
        it.denominator = match it.weight {
            None => kept() as f64,
            Some(w) => sum_by(ids.len(), |r| {
                let t = ids[r];
                if t == ignore {
                    0.0
                } else {
                    w[t as usize].acc()
                }
            }),
        };
        Ok(it)
    }
}

impl<'a, T: Float> IndexTargets<'a, T> {
    /// Checks `target` against an input of shape `input_shape` ([`UncheckedTargets::new`]),
    /// then every class id ([`UncheckedTargets::check`]).
    pub(crate) fn new(
        input_shape: &[usize],
        target: &'a View<'_, i64>,
        weight: Option<&'a View<'_, T>>,
        ignore_index: i64,
    ) -> Result<Self> {
        UncheckedTargets::new(input_shape, target, weight, ignore_index)?.check()
    }

    /// The class ids from row `r0` on, for the kernels ([`IndexClasses`]).
    #[inline]
    pub(crate) fn classes_from(&self, r0: usize) -> IndexClasses<'a> {
        IndexClasses { ids: &self.targets[r0..], ignore: self.ignore_index }
    }

    /// The class of row `r`, or `None` when its target is `ignore_index`.
    #[inline]
    pub(crate) fn class(&self, r: usize) -> Option<usize> {
        let t = self.targets[r];
        // every other value was checked to lie in [0, C)
        (t != self.ignore_index).then_some(t as usize)
    }

    /// The per-class weights, if given.
    #[inline]
    pub(crate) fn weight(&self) -> Option<&'a [T]> {
        self.weight
    }

    /// The weight of class `c` (1 without weights).
    #[inline]
    pub(crate) fn weight_of(&self, c: usize) -> T {
        self.weight.map_or(T::one(), |w| w[c])
    }

    /// Reduces the per-row losses: `mean` divides by the total weight of the rows that are not
    /// ignored (NaN when that is 0/0, as in PyTorch).
    pub(crate) fn reduce(&self, values: Vec<T>, reduction: Reduction) -> Tensor<T> {
        reduce(values, &self.rows.out_shape, reduction, Some(self.denominator))
    }

    /// [`reduce`](Self::reduce) for a kernel that summed the values as it computed them
    /// (`values` kept for `none` only).
    pub(crate) fn reduce_summed(&self, values: Option<Vec<T>>, total: f64, reduction: Reduction) -> Tensor<T> {
        reduce_summed(values, total, &self.rows.out_shape, reduction, Some(self.denominator))
    }

    /// The gradient of the reduced loss with respect to each row's loss: the (scaled) upstream
    /// for the rows that are not ignored, exactly 0 for the ignored ones (also when the mean's
    /// denominator is 0).
    pub(crate) fn row_cotangents(&self, upstream: &Upstream<'_, T>, reduction: Reduction) -> Result<Vec<T>> {
        let cot = reduce_cot(upstream, &self.rows.out_shape, reduction, Some(self.denominator))?;
        let (ids, ignore) = (self.targets, self.ignore_index);
        // one loop per form of the upstream, with no per-row `match`: a select per row (at
        // 32 classes the per-row `class` and `at` had cost 4% of cross_entropy's instructions)
        Ok(match cot.parts() {
            (None, c) => ids.iter().map(|&t| if t != ignore { c } else { T::zero() }).collect(),
            (Some(each), scale) => {
                ids.iter().zip(each).map(|(&t, &e)| if t != ignore { scale * e } else { T::zero() }).collect()
            }
        })
    }

    /// [`row_cotangents`](Self::row_cotangents) as the kernels read them, one row or eight at a
    /// time, with no vector of them ([`IndexCots`]).
    pub(crate) fn index_cots<'s>(
        &'s self,
        upstream: &'s Upstream<'_, T>,
        reduction: Reduction,
    ) -> Result<IndexCots<'s, T>> {
        let cot = reduce_cot(upstream, &self.rows.out_shape, reduction, Some(self.denominator))?;
        let (each, scale) = cot.parts();
        Ok(IndexCots { ids: self.targets, ignore: self.ignore_index, scale, each })
    }

    /// Zero cotangents for every row, in the form of [`index_cots`](Self::index_cots).
    pub(crate) fn zero_cots(&self) -> IndexCots<'_, T> {
        IndexCots { ids: self.targets, ignore: self.ignore_index, scale: T::zero(), each: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_rows() {
        let r = ClassRows::new(&[2, 3, 4, 5]).unwrap();
        assert_eq!((r.layout.outer, r.layout.len, r.layout.inner), (2, 3, 20));
        assert_eq!(r.out_shape, vec![2, 4, 5]);
        let r = ClassRows::new(&[7]).unwrap();
        assert_eq!((r.classes(), r.layout.rows(), r.out_shape.len()), (7, 1, 0));
        assert!(matches!(ClassRows::new(&[]), Err(LossError::Shape { .. })));
    }

    #[test]
    fn weighted_denominator_skips_ignored() {
        let t = View::from_vec(vec![0i64, 2, -100, 2], &[4]).unwrap();
        let w = View::from_vec(vec![1.0f64, 10.0, 100.0], &[3]).unwrap();
        let it = IndexTargets::new(&[4, 3], &t, Some(&w), -100).unwrap();
        assert_eq!(it.denominator, 201.0);
        assert_eq!((it.class(1), it.class(2)), (Some(2), None));
        let it = IndexTargets::<f64>::new(&[4, 3], &t, None, -100).unwrap();
        assert_eq!(it.denominator, 3.0);
        // with ignore_index = 2 that class is ignored, and -100 becomes an invalid index
        let e = IndexTargets::<f64>::new(&[4, 3], &t, None, 2).unwrap_err();
        assert!(matches!(e, LossError::IndexOutOfRange { index: -100, position: 2, .. }));
        let t = View::from_vec(vec![0i64, 2, 1, 2], &[4]).unwrap();
        let it = IndexTargets::new(&[4, 3], &t, Some(&w), 2).unwrap();
        assert_eq!((it.denominator, it.class(1), it.class(2)), (11.0, None, Some(1)));
    }

    #[test]
    fn errors_name_the_argument() {
        let t = View::from_vec(vec![0i64, 3], &[2]).unwrap();
        let e = IndexTargets::<f64>::new(&[2, 3], &t, None, -100).unwrap_err();
        assert!(matches!(e, LossError::IndexOutOfRange { index: 3, position: 1, .. }));
        let e = IndexTargets::<f64>::new(&[3, 3], &t, None, -100).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "target"));
        let t = View::from_vec(vec![0i64, 1], &[2]).unwrap();
        let w = View::from_vec(vec![1.0f64; 4], &[4]).unwrap();
        let e = IndexTargets::new(&[2, 3], &t, Some(&w), -100).unwrap_err();
        assert!(matches!(e, LossError::Shape { ref arg, .. } if arg == "weight"));
        // an unbatched input takes a 0-d target
        let t0 = View::from_vec(vec![1i64], &[]).unwrap();
        assert!(IndexTargets::<f64>::new(&[3], &t0, None, -100).is_ok());
        let t1 = View::from_vec(vec![1i64], &[1]).unwrap();
        assert!(IndexTargets::<f64>::new(&[3], &t1, None, -100).is_err());
    }
}

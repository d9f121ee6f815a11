//! Input views ([`View`]), owned results ([`Tensor`]) and shape helpers.
//!
//! A [`View`] is a C-order (row-major) contiguous slice with a shape. It is built from an
//! `ndarray` array or view (borrowed when the array is in standard layout, copied into C order
//! otherwise) or from a plain slice and a shape, which is what candle, burn and NumPy hand over.

use std::borrow::Cow;
use std::fmt::Debug;

use ndarray::{ArrayBase, ArrayD, ArrayView, Data, Dimension, IxDyn};

use crate::error::{LossError, Result};

/// A read-only, C-order contiguous tensor argument.
#[derive(Clone, Debug, PartialEq)]
pub struct View<'a, T: Clone> {
    data: Cow<'a, [T]>,
    shape: Vec<usize>,
}

impl<'a, T: Clone> View<'a, T> {
    /// A view of `data` with `shape` (C order). Fails when the element count does not match.
    pub fn new(data: &'a [T], shape: &[usize]) -> Result<Self> {
        check_len(data.len(), shape)?;
        Ok(View { data: Cow::Borrowed(data), shape: shape.to_vec() })
    }

    /// An owning view of `data` with `shape` (C order).
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Result<View<'static, T>> {
        check_len(data.len(), shape)?;
        Ok(View { data: Cow::Owned(data), shape: shape.to_vec() })
    }

    /// A one-dimensional view of a slice.
    pub fn vector(data: &'a [T]) -> Self {
        View { shape: vec![data.len()], data: Cow::Borrowed(data) }
    }

    /// The elements in C order.
    #[inline]
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The shape.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    #[inline]
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the view has no element.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A view of the same data with another shape of the same element count.
    pub fn reshaped(&self, shape: &[usize]) -> Result<View<'_, T>> {
        check_len(self.data.len(), shape)?;
        Ok(View { data: Cow::Borrowed(&self.data), shape: shape.to_vec() })
    }

    /// Borrows this view (cheap: no copy of the data).
    pub fn borrow(&self) -> View<'_, T> {
        View { data: Cow::Borrowed(&self.data), shape: self.shape.clone() }
    }

    /// Maps every element (used to convert integer labels to floats, say).
    pub fn map<U: Clone>(&self, f: impl Fn(&T) -> U) -> View<'static, U> {
        View { data: Cow::Owned(self.data.iter().map(f).collect()), shape: self.shape.clone() }
    }
}

/// The largest number of elements a shape may span: the product of the non-zero dimensions of
/// an input (which, for an empty input, holds no data to bound it) and the size of a broadcast
/// result. Losses size their outputs and scratch buffers from these numbers; without a bound an
/// empty array such as `(0, 10^12)` or a broadcast of `(10^6, 1)` with `(1, 10^6)` would make
/// them ask for terabytes and abort instead of returning an error.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The product of the non-zero dimensions of `shape`, if it is at most [`MAX_ELEMENTS`].
pub(crate) fn extent(shape: &[usize]) -> Option<usize> {
    shape.iter().filter(|&&d| d != 0).try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_ELEMENTS)
}

/// Fails with [`LossError::Shape`] for `arg` when `shape` spans more than [`MAX_ELEMENTS`]
/// (counting its non-zero dimensions only).
pub(crate) fn check_extent(arg: &str, shape: &[usize]) -> Result<()> {
    match extent(shape) {
        Some(_) => Ok(()),
        None => Err(LossError::Shape {
            arg: arg.into(),
            expected: format!("at most {MAX_ELEMENTS} elements along its non-empty axes"),
            found: shape.to_vec(),
        }),
    }
}

fn check_len(len: usize, shape: &[usize]) -> Result<()> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if n != Some(len) {
        return Err(LossError::Shape {
            arg: "data".into(),
            expected: format!("{len} elements (the length of the data)"),
            found: shape.to_vec(),
        });
    }
    // data of that many elements bounds a non-empty shape; an empty one needs the check
    if len == 0 {
        check_extent("data", shape)?;
    }
    Ok(())
}

impl<'a, T: Clone, D: Dimension> From<ArrayView<'a, T, D>> for View<'a, T> {
    fn from(a: ArrayView<'a, T, D>) -> Self {
        let shape = a.shape().to_vec();
        match a.to_slice() {
            Some(s) => View { data: Cow::Borrowed(s), shape },
            None => View { data: Cow::Owned(a.iter().cloned().collect()), shape },
        }
    }
}

impl<'a, T: Clone, S: Data<Elem = T>, D: Dimension> From<&'a ArrayBase<S, D>> for View<'a, T> {
    fn from(a: &'a ArrayBase<S, D>) -> Self {
        View::from(a.view())
    }
}

impl<'a, T: Clone> From<&'a [T]> for View<'a, T> {
    fn from(s: &'a [T]) -> Self {
        View::vector(s)
    }
}

impl<'a, T: Clone> From<&'a Vec<T>> for View<'a, T> {
    fn from(s: &'a Vec<T>) -> Self {
        View::vector(s)
    }
}

/// An owned result: a loss (a 0-d tensor when reduced) or a gradient.
///
/// A large result computed by losskit gives its memory to the crate's buffer cache when it is
/// dropped, so that the next result of a similar size reuses pages that are already mapped
/// (see [`kernels::alloc`](crate::kernels::alloc)); [`into_vec`](Self::into_vec) and
/// [`into_array`](Self::into_array) hand the memory over instead.
#[derive(Clone)]
pub struct Tensor<T> {
    data: Vec<T>,
    shape: Vec<usize>,
    /// Where `data` goes when the tensor is dropped; `None` for a tensor built by the caller.
    release: Option<fn(Vec<T>)>,
}

impl<T: Debug> Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor").field("data", &self.data).field("shape", &self.shape).finish()
    }
}

impl<T: PartialEq> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data == other.data
    }
}

impl<T> Drop for Tensor<T> {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            release(std::mem::take(&mut self.data));
        }
    }
}

impl<T: crate::Float> Tensor<T> {
    /// A result of the crate's kernels: its buffer goes back to the buffer cache when dropped.
    pub(crate) fn from_parts(data: Vec<T>, shape: Vec<usize>) -> Self {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Tensor { data, shape, release: Some(crate::kernels::alloc::recycle::<T>) }
    }
}

impl<T: Clone> Tensor<T> {
    /// A tensor from C-order data and a shape. Fails when the element count does not match.
    pub fn new(data: Vec<T>, shape: Vec<usize>) -> Result<Self> {
        check_len(data.len(), &shape)?;
        Ok(Tensor { data, shape, release: None })
    }

    /// A 0-d tensor.
    pub fn scalar(v: T) -> Self {
        Tensor { data: vec![v], shape: vec![], release: None }
    }

    /// The elements in C order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The elements, mutable.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// The shape (`[]` for a reduced loss).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The value of a 0-d (or one-element) tensor.
    pub fn item(&self) -> Option<T> {
        if self.data.len() == 1 {
            Some(self.data[0].clone())
        } else {
            None
        }
    }

    /// Takes the data out.
    pub fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.data)
    }

    /// Converts into an `ndarray` array of the same shape.
    pub fn into_array(mut self) -> ArrayD<T> {
        // the length was checked on construction, so this cannot fail
        ArrayD::from_shape_vec(IxDyn(&self.shape), std::mem::take(&mut self.data))
            .unwrap_or_else(|_| unreachable!("Tensor length matches its shape"))
    }

    /// A view of this tensor, to pass it on as an argument.
    pub fn view(&self) -> View<'_, T> {
        View { data: Cow::Borrowed(&self.data), shape: self.shape.clone() }
    }
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Formats a shape as `(2, 3)` for messages.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

/// Resolves a possibly negative axis against `ndim` (Python convention).
pub(crate) fn resolve_axis(option: &str, axis: i64, ndim: usize) -> Result<usize> {
    let n = ndim as i64;
    if axis < -n || axis >= n || ndim == 0 {
        return Err(LossError::option(
            option,
            format!("axis {axis} is out of range for an input with {ndim} dimension(s)"),
        ));
    }
    Ok(if axis < 0 { (axis + n) as usize } else { axis as usize })
}

/// Requires `found` to equal `expected` exactly.
pub(crate) fn same_shape(arg: &str, found: &[usize], other: &str, expected: &[usize]) -> Result<()> {
    if found != expected {
        return Err(LossError::shape(arg, format!("the shape of `{other}`, {}", fmt_shape(expected)), found));
    }
    Ok(())
}

/// Requires every argument to have the same number of dimensions as the first.
pub(crate) fn same_ndim(args: &[(&str, &[usize])]) -> Result<()> {
    if let Some((first, s0)) = args.first() {
        for (name, s) in &args[1..] {
            if s.len() != s0.len() {
                return Err(LossError::shape(
                    name,
                    format!("{} dimension(s) like `{first}` {}", s0.len(), fmt_shape(s0)),
                    s,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_views_with_huge_axes_are_errors() {
        // regression: an empty (0, 10^12) input made the class-axis losses allocate 10^12
        // elements and abort
        let none: [f64; 0] = [];
        assert!(View::new(&none, &[0, 1_000_000_000_000]).is_err());
        assert!(View::new(&none, &[0, usize::MAX, 2]).is_err());
        assert!(Tensor::new(Vec::<f32>::new(), vec![1 << 40, 0]).is_err());
        assert!(View::new(&none, &[0, 30_000]).is_ok());
        assert!(View::new(&none, &[0, MAX_ELEMENTS]).is_ok());
        assert_eq!(extent(&[0, 3, 0, 5]), Some(15));
    }
}

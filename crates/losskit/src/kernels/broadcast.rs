//! NumPy broadcasting for small arguments (weights, per-class factors) and its backward.

use std::borrow::Cow;

use crate::error::{LossError, Result};
use crate::float::Float;
use crate::tensor::{fmt_shape, numel};

/// The broadcast shape of `a` and `b` (NumPy rules: align from the right, sizes equal or 1).
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// The broadcast shape of several named arguments (PyTorch's `broadcast_shapes`), folded left
/// to right. Fails with [`LossError::Shape`] naming the first argument that does not broadcast
/// with the shape of the ones before it.
pub fn broadcast_all(args: &[(&str, &[usize])]) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = Vec::new();
    for (k, (name, shape)) in args.iter().enumerate() {
        out = match broadcast_shapes(&out, shape) {
            Some(s) => s,
            None => {
                let before: Vec<&str> = args[..k].iter().map(|(n, _)| *n).collect();
                return Err(LossError::shape(
                    name,
                    format!(
                        "a shape that broadcasts with {} (the broadcast shape of `{}`)",
                        fmt_shape(&out),
                        before.join("`, `")
                    ),
                    shape,
                ));
            }
        };
        crate::tensor::check_extent(name, &out)?;
    }
    Ok(out)
}

/// Strides (in elements) of `src` seen through the broadcast to `dst` (0 on broadcast dims).
fn broadcast_strides(arg: &str, src: &[usize], dst: &[usize]) -> Result<Vec<usize>> {
    let bad = || LossError::shape(arg, format!("a shape that broadcasts to {}", fmt_shape(dst)), src);
    if src.len() > dst.len() {
        return Err(bad());
    }
    let off = dst.len() - src.len();
    let mut strides = vec![0; dst.len()];
    let mut s = 1;
    for i in (0..src.len()).rev() {
        if src[i] == dst[i + off] {
            strides[i + off] = if src[i] == 1 { 0 } else { s };
        } else if src[i] != 1 {
            return Err(bad());
        }
        s *= src[i];
    }
    Ok(strides)
}

/// Visits `(dst_index, src_index)` for every element of `dst` in C order.
fn for_each_index(dst: &[usize], strides: &[usize], mut f: impl FnMut(usize, usize)) {
    let n = numel(dst);
    if n == 0 {
        return;
    }
    let nd = dst.len();
    let mut idx = vec![0usize; nd];
    let mut src = 0usize;
    for d in 0..n {
        f(d, src);
        // odometer increment
        let mut k = nd;
        while k > 0 {
            k -= 1;
            idx[k] += 1;
            src += strides[k];
            if idx[k] < dst[k] {
                break;
            }
            src -= strides[k] * dst[k];
            idx[k] = 0;
        }
    }
}

/// `src` (shape `src_shape`) broadcast to `dst_shape`, borrowed when the shapes are equal.
/// Fails with [`LossError::Shape`] naming `arg` when it does not broadcast.
pub fn expand<'a, T: Copy>(arg: &str, src: &'a [T], src_shape: &[usize], dst_shape: &[usize]) -> Result<Cow<'a, [T]>> {
    if src_shape == dst_shape {
        return Ok(Cow::Borrowed(src));
    }
    let strides = broadcast_strides(arg, src_shape, dst_shape)?;
    let mut out = Vec::with_capacity(numel(dst_shape));
    for_each_index(dst_shape, &strides, |_, s| out.push(src[s]));
    Ok(Cow::Owned(out))
}

/// The backward of [`expand`]: sums `full` (shape `dst_shape`) over the broadcast dimensions
/// into `out` (shape `src_shape`), accumulating in the accumulator type.
pub fn sum_to<T: Float>(full: &[T], dst_shape: &[usize], src_shape: &[usize], out: &mut [T]) -> Result<()> {
    if src_shape == dst_shape {
        out.copy_from_slice(full);
        return Ok(());
    }
    let strides = broadcast_strides("gradient", src_shape, dst_shape)?;
    let mut acc = vec![0.0; out.len()];
    for_each_index(dst_shape, &strides, |d, s| acc[s] += full[d].acc());
    for (o, a) in out.iter_mut().zip(acc) {
        *o = T::from_acc(a);
    }
    Ok(())
}

/// The backward of [`expand`] for a gradient held in the accumulator type: adds `full`
/// (shape `dst_shape`) summed over the broadcast dimensions into `acc` (shape `src_shape`).
pub fn sum_into(full: &[f64], dst_shape: &[usize], src_shape: &[usize], acc: &mut [f64]) -> Result<()> {
    let strides = broadcast_strides("gradient", src_shape, dst_shape)?;
    for_each_index(dst_shape, &strides, |d, s| acc[s] += full[d]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_broadcast_results_are_errors() {
        // regression: (10^5, 1, 3) against (1, 10^5, 3) asked for 3e10 elements and aborted
        let e = broadcast_all(&[("anchor", &[100_000, 1, 3]), ("positive", &[1, 100_000, 3])]).unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
        assert_eq!(broadcast_all(&[("a", &[1000, 1]), ("b", &[1, 1000])]).unwrap(), vec![1000, 1000]);
    }

    #[test]
    fn shapes() {
        assert_eq!(broadcast_shapes(&[4, 3], &[3]), Some(vec![4, 3]));
        assert_eq!(broadcast_shapes(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast_shapes(&[2, 3], &[4]), None);
    }

    #[test]
    fn expand_and_sum_back() {
        let w = [1.0f64, 2.0, 3.0];
        let e = expand("w", &w, &[3], &[2, 3]).unwrap();
        assert_eq!(&*e, &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        let col = [10.0f64, 20.0];
        let e = expand("w", &col, &[2, 1], &[2, 3]).unwrap();
        assert_eq!(&*e, &[10.0, 10.0, 10.0, 20.0, 20.0, 20.0]);
        let mut back = [0.0f64; 3];
        sum_to(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], &[3], &mut back).unwrap();
        assert_eq!(back, [5.0, 7.0, 9.0]);
        assert!(expand("w", &w, &[3], &[3, 2]).is_err());
    }

    #[test]
    fn broadcast_all_names_the_culprit() {
        let a: &[usize] = &[3, 1];
        let b: &[usize] = &[1, 4];
        let c: &[usize] = &[5];
        assert_eq!(broadcast_all(&[("a", a), ("b", b)]).unwrap(), vec![3, 4]);
        let e: &[usize] = &[];
        let none: Vec<usize> = Vec::new();
        assert_eq!(broadcast_all(&[("a", e), ("b", e)]).unwrap(), none);
        match broadcast_all(&[("a", a), ("b", b), ("c", c)]) {
            Err(LossError::Shape { arg, .. }) => assert_eq!(arg, "c"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sum_into_adds() {
        let mut acc = [1.0f64, 1.0];
        sum_into(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], &[2, 1], &mut acc).unwrap();
        assert_eq!(acc, [7.0, 16.0]);
    }
}

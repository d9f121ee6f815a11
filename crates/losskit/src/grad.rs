//! Backward pass plumbing: the upstream gradient ([`Upstream`]), what a backward call asks for
//! ([`Backward`]), and where gradients go ([`Grads`], [`GradsMut`]).
//!
//! Every loss has a `*_grad` function taking a [`Backward`]. It returns the loss and the
//! gradient of `sum(upstream * loss)` with respect to every differentiable argument that was
//! given: with [`Upstream::Ones`] (the default) that is the gradient of the sum of the loss's
//! elements, i.e. of the loss itself when it is reduced to a scalar.

use crate::error::{LossError, Result};
use crate::tensor::{Tensor, View};

/// The gradient flowing into the loss from above (the "cotangent" of its output).
#[derive(Clone, Debug, Default)]
pub enum Upstream<'a, T: Clone> {
    /// All ones: the gradient of the sum of the loss's elements.
    #[default]
    Ones,
    /// The same value for every element of the loss (for a reduced loss: its one value).
    Scalar(T),
    /// One value per loss element: an array shaped like the loss (a 0-d array for a reduced
    /// loss).
    Array(View<'a, T>),
}

/// What a `*_grad` call should do: the upstream gradient, and optionally caller-provided
/// buffers to write the gradients into (then nothing is allocated for them and the returned
/// [`Grads`] does not hold them).
#[derive(Debug, Default)]
pub struct Backward<'u, 'g, T: Clone> {
    upstream: Upstream<'u, T>,
    into: Option<GradsMut<'g, T>>,
}

impl<'u, 'g, T: Clone> Backward<'u, 'g, T> {
    /// Gradient of the sum of the loss, into freshly allocated arrays.
    pub fn new() -> Self {
        Backward { upstream: Upstream::Ones, into: None }
    }

    /// Sets the upstream gradient.
    pub fn upstream(mut self, upstream: Upstream<'u, T>) -> Self {
        self.upstream = upstream;
        self
    }

    /// Writes the gradients into the given buffers instead of allocating: only the arguments
    /// that have a buffer get a gradient. Every element of a given buffer is overwritten.
    pub fn into_buffers(mut self, buffers: GradsMut<'g, T>) -> Self {
        self.into = Some(buffers);
        self
    }

    /// Splits into the upstream gradient and the place the gradients go.
    pub(crate) fn start(self) -> (Upstream<'u, T>, GradSink<'g, T>) {
        let sink = match self.into {
            None => Sink::Owned(Vec::new()),
            Some(b) => Sink::Into(b.bufs),
        };
        (self.upstream, GradSink { sink })
    }
}

/// [`Backward::start`] for an optional backward pass: both parts absent without one.
pub(crate) fn start_optional<'u, 'g, T: Clone>(
    backward: Option<Backward<'u, 'g, T>>,
) -> (Option<Upstream<'u, T>>, Option<GradSink<'g, T>>) {
    match backward {
        None => (None, None),
        Some(bw) => {
            let (upstream, sink) = bw.start();
            (Some(upstream), Some(sink))
        }
    }
}

/// [`GradSink::slots_overwritten`] on an optional sink: no slot without one.
pub(crate) fn overwritten_slots<'s, T: crate::Float, const K: usize>(
    sink: &'s mut Option<GradSink<'_, T>>,
    req: [SlotRequest<'_>; K],
) -> Result<[Option<&'s mut [T]>; K]> {
    match sink {
        Some(sink) => sink.slots_overwritten(req),
        None => Ok(std::array::from_fn(|_| None)),
    }
}

/// Gradients by argument name, in the order of the loss's arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grads<T> {
    items: Vec<(&'static str, Tensor<T>)>,
}

impl<T: Clone> Grads<T> {
    /// The gradient of argument `name`, if it was computed.
    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.items.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    /// Removes and returns the gradient of `name`.
    pub fn take(&mut self, name: &str) -> Option<Tensor<T>> {
        let i = self.items.iter().position(|(n, _)| *n == name)?;
        Some(self.items.remove(i).1)
    }

    /// Iterates over `(argument name, gradient)`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Tensor<T>)> {
        self.items.iter().map(|(n, t)| (*n, t))
    }

    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no gradient is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> IntoIterator for Grads<T> {
    type Item = (&'static str, Tensor<T>);
    type IntoIter = std::vec::IntoIter<(&'static str, Tensor<T>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// Caller-provided gradient buffers by argument name (C order, the argument's length).
#[derive(Debug, Default)]
pub struct GradsMut<'g, T> {
    bufs: Vec<(String, &'g mut [T])>,
}

impl<'g, T> GradsMut<'g, T> {
    /// No buffers yet.
    pub fn new() -> Self {
        GradsMut { bufs: Vec::new() }
    }

    /// Adds the buffer for argument `name`.
    pub fn with(mut self, name: &str, buffer: &'g mut [T]) -> Self {
        self.bufs.push((name.to_string(), buffer));
        self
    }
}

enum Sink<'g, T> {
    Owned(Vec<(&'static str, Tensor<T>)>),
    /// the caller's buffers
    Into(Vec<(String, &'g mut [T])>),
}

/// Where a loss implementation writes its gradients.
pub(crate) struct GradSink<'g, T> {
    sink: Sink<'g, T>,
}

/// One requested gradient slot: the argument name, its shape, and whether the argument is
/// present (an absent optional argument gets no slot).
pub(crate) type SlotRequest<'s> = (&'static str, &'s [usize], bool);

impl<'g, T: crate::Float> GradSink<'g, T> {
    /// Hands out one output buffer per request (`None` where the argument is absent or the
    /// caller gave no buffer for it), zero-filled.
    pub(crate) fn slots<const K: usize>(&mut self, req: [SlotRequest<'_>; K]) -> Result<[Option<&mut [T]>; K]> {
        self.slots_filled(req, true)
    }

    /// [`slots`](Self::slots) for a kernel that writes every element of every slot: a caller's
    /// buffer is not zero-filled first (one pass less over it), and a fresh buffer is not
    /// zeroed either ([`alloc::for_overwrite`](crate::kernels::alloc::for_overwrite)).
    pub(crate) fn slots_overwritten<const K: usize>(
        &mut self,
        req: [SlotRequest<'_>; K],
    ) -> Result<[Option<&mut [T]>; K]> {
        self.slots_filled(req, false)
    }

    fn slots_filled<const K: usize>(&mut self, req: [SlotRequest<'_>; K], fill: bool) -> Result<[Option<&mut [T]>; K]> {
        let mut out: [Option<&mut [T]>; K] = std::array::from_fn(|_| None);
        match &mut self.sink {
            Sink::Owned(items) => {
                let first = items.len();
                let mut which = Vec::new();
                for (k, (name, shape, present)) in req.iter().enumerate() {
                    if *present {
                        let n = crate::tensor::numel(shape);
                        let data = if fill {
                            crate::kernels::alloc::zeroed(n)
                        } else {
                            crate::kernels::alloc::for_overwrite(n)
                        };
                        items.push((name, Tensor::from_parts(data, shape.to_vec())));
                        which.push(k);
                    }
                }
                for ((_, t), k) in items[first..].iter_mut().zip(which) {
                    out[k] = Some(t.data_mut());
                }
            }
            Sink::Into(bufs) => {
                for (bname, _) in bufs.iter() {
                    if !req.iter().any(|(n, _, present)| *present && n == bname) {
                        return Err(LossError::value(
                            bname,
                            "a gradient buffer was given for an argument that is absent or has no gradient",
                        ));
                    }
                }
                // map each buffer to its request slot
                let mut target = Vec::with_capacity(bufs.len());
                for (bname, b) in bufs.iter() {
                    let k = req.iter().position(|(n, _, _)| n == bname).unwrap_or(0);
                    let n = crate::tensor::numel(req[k].1);
                    if b.len() != n {
                        return Err(LossError::GradBuffer { arg: bname.clone(), expected: n, found: b.len() });
                    }
                    target.push(k);
                }
                for ((_, b), k) in bufs.iter_mut().zip(target) {
                    if fill {
                        crate::kernels::sum::par_zero(b);
                    }
                    out[k] = Some(&mut **b);
                }
            }
        }
        Ok(out)
    }

    /// The gradients that were allocated here (empty when the caller gave buffers).
    pub(crate) fn finish(self) -> Grads<T> {
        match self.sink {
            Sink::Owned(items) => Grads { items },
            Sink::Into(..) => Grads::default(),
        }
    }
}

//! `losskit bench`: times every loss in-process through the typed library API (medians of many
//! repetitions after a warm-up), and `--stream` probes the memory bandwidth, so that a report
//! can give the fraction of the bandwidth each loss reaches.
//!
//! Each case is one loss at one size and dtype, timed in three modes: `fwd` (the value),
//! `fwd_bwd` (the value and freshly allocated gradients, `Backward::new()`, dropped after the
//! call, so that from the second call on they come from losskit's buffer cache as in a training
//! loop; `LOSSKIT_BUFFER_CACHE_MIB=0` turns the cache off) and `fwd_bwd_into` (the value and the
//! gradient of the prediction written into caller buffers reused across calls). Every call
//! runs inside a rayon pool of the requested size, so a library that
//! parallelises with rayon uses exactly that many threads.
//!
//! With a single `--threads` value the calling (main) thread is one of the pool's threads and
//! makes the calls itself, as a program calling the library does. With several, the calls run
//! on a pool's worker thread, whose glibc arena serves every allocation over 64 MiB (the
//! largest arena heap) with a fresh `mmap`, even with the warm allocator tunables: the page
//! faults of a fresh 128 MB gradient then count in every repetition. `bench/compare_torch.py`
//! therefore runs one process per thread count.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::ValueEnum;
use losskit::catalog;
use losskit::{numel, Backward, Float, Grads, GradsMut, Tensor, View};
use rayon::prelude::*;
use serde_json::{json, Value};

/// Arguments of `losskit bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Loss ids to time, comma-separated (default: every implemented loss; with --stream: none).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub ids: Vec<String>,
    /// Thread counts, comma-separated: each case runs inside a rayon pool of that size (with one
    /// count, the calling thread is one of the pool's threads: see the module notes).
    #[arg(long, value_delimiter = ',', value_name = "N,...", default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Sizes, comma-separated: element counts (1e4, 1000000) for elementwise losses and BxC
    /// (4096x1000) for class-dimension losses; a loss with no size of its kind is skipped.
    /// Default: 1e4,1e6,1e7,4096x1000,65536x32,1024x32000.
    #[arg(long, value_delimiter = ',', value_name = "SIZE,...")]
    pub sizes: Vec<String>,
    /// Dtypes, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "DTYPE,...", default_value = "f32,f64")]
    pub dtypes: Vec<Dt>,
    /// Modes, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "MODE,...", default_value = "fwd,fwd_bwd,fwd_bwd_into")]
    pub modes: Vec<Mode>,
    /// Also write every record to this file, as a JSON array (one record per line).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// A smoke run: small sizes (1e4, 100x100) and few repetitions.
    #[arg(long)]
    pub quick: bool,
    /// Probe the memory bandwidth (STREAM-style read and triad, per thread count) first; the
    /// losses of --ids are then timed too and the table shows their fraction of it.
    #[arg(long)]
    pub stream: bool,
    /// Seconds of timed repetitions per case (default 0.3, with --quick 0.01).
    #[arg(long, value_name = "SECONDS")]
    pub time: Option<f64>,
    /// Least number of timed repetitions per case (default 5, with --quick 3).
    #[arg(long, value_name = "N")]
    pub min_reps: Option<usize>,
    /// Time nothing: compute every case (its value and every gradient) once per thread count
    /// and fail unless all thread counts give the same bits.
    #[arg(long)]
    pub check_threads: bool,
}

/// What one timed call computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The value only.
    #[value(name = "fwd")]
    Fwd,
    /// The value and freshly allocated gradients (`Backward::new()`).
    #[value(name = "fwd_bwd")]
    FwdBwd,
    /// The value and the prediction's gradient written into reused caller buffers.
    #[value(name = "fwd_bwd_into")]
    FwdBwdInto,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Fwd => "fwd",
            Mode::FwdBwd => "fwd_bwd",
            Mode::FwdBwdInto => "fwd_bwd_into",
        }
    }
}

/// A computation dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dt {
    /// float32.
    #[value(name = "f32", alias = "float32")]
    F32,
    /// float64.
    #[value(name = "f64", alias = "float64")]
    F64,
}

/// Elementwise losses of the `Rows` kind get inputs of shape `(n / ROW, ROW)`.
const ROW: usize = 100;

/// How a loss's inputs are shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// One flat array of `n` elements.
    Flat,
    /// `(n / ROW, ROW)`: Keras losses (mean over the last axis) and embeddings.
    Rows,
    /// `(B, C)` with a class axis.
    Class,
}

/// The benchmark case of one loss: its input layout and the options it runs with (the
/// catalogue's defaults unless listed).
struct Def {
    id: &'static str,
    /// "" for the loss's main case; otherwise the case is named `ID@VARIANT` (same loss, other
    /// options or target kind), e.g. to compare label smoothing with plain cross-entropy.
    variant: &'static str,
    kind: Kind,
    options: &'static str,
}

impl Def {
    /// `ID` or `ID@VARIANT`.
    fn name(&self) -> String {
        if self.variant.is_empty() {
            self.id.to_string()
        } else {
            format!("{}@{}", self.id, self.variant)
        }
    }
}

const DEFS: &[Def] = &[
    Def { id: "mse", variant: "", kind: Kind::Flat, options: "" },
    Def { id: "l1", variant: "", kind: Kind::Flat, options: "" },
    Def { id: "huber", variant: "", kind: Kind::Flat, options: "" },
    Def { id: "smooth_l1", variant: "", kind: Kind::Flat, options: "" },
    Def { id: "log_cosh", variant: "", kind: Kind::Rows, options: "" },
    Def { id: "mean_absolute_percentage_error", variant: "", kind: Kind::Rows, options: "" },
    Def { id: "mean_squared_logarithmic_error", variant: "", kind: Kind::Rows, options: "" },
    Def { id: "poisson", variant: "", kind: Kind::Rows, options: "" },
    Def { id: "kl_divergence", variant: "", kind: Kind::Rows, options: "" },
    Def { id: "log_softmax", variant: "", kind: Kind::Class, options: "dim=1" },
    Def { id: "cross_entropy", variant: "", kind: Kind::Class, options: "" },
    Def { id: "cross_entropy", variant: "label_smoothing", kind: Kind::Class, options: "label_smoothing=0.1" },
    Def { id: "cross_entropy", variant: "probabilities", kind: Kind::Class, options: "target=probabilities" },
    Def { id: "nll", variant: "", kind: Kind::Class, options: "" },
    Def { id: "binary_cross_entropy", variant: "", kind: Kind::Flat, options: "" },
    Def { id: "binary_cross_entropy_with_logits", variant: "", kind: Kind::Flat, options: "" },
    Def { id: "categorical_crossentropy", variant: "", kind: Kind::Class, options: "from_logits=true" },
    Def { id: "sparse_categorical_crossentropy", variant: "", kind: Kind::Class, options: "from_logits=true" },
    Def { id: "binary_crossentropy", variant: "", kind: Kind::Rows, options: "from_logits=true" },
    Def { id: "squared_hinge", variant: "", kind: Kind::Rows, options: "" },
    Def { id: "multiclass_hinge", variant: "", kind: Kind::Class, options: "" },
    Def { id: "margin_ranking", variant: "", kind: Kind::Flat, options: "" },
    Def { id: "cosine_similarity", variant: "", kind: Kind::Rows, options: "" },
    Def { id: "triplet_margin", variant: "", kind: Kind::Rows, options: "" },
];

/// One requested size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Size {
    Elems(usize),
    Class(usize, usize),
}

const DEFAULT_SIZES: &[Size] = &[
    Size::Elems(10_000),
    Size::Elems(1_000_000),
    Size::Elems(10_000_000),
    Size::Class(4096, 1000),
    Size::Class(65536, 32),
    Size::Class(1024, 32000),
];
const QUICK_SIZES: &[Size] = &[Size::Elems(10_000), Size::Class(100, 100)];

fn parse_count(text: &str) -> Result<usize, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<usize>() {
        if n > 0 {
            return Ok(n);
        }
    }
    match t.parse::<f64>() {
        Ok(f) if (1.0..=1e12).contains(&f) && f.fract() == 0.0 => Ok(f as usize),
        _ => Err(format!("--sizes: '{text}' is not a positive element count (e.g. 1e6) or BxC (e.g. 4096x1000)")),
    }
}

fn parse_size(text: &str) -> Result<Size, String> {
    match text.split_once(['x', 'X']) {
        Some((b, c)) => Ok(Size::Class(parse_count(b)?, parse_count(c)?)),
        None => Ok(Size::Elems(parse_count(text)?)),
    }
}

/// `n` as C's `%.0e` writes it (`1e+07`).
fn c_exp(n: usize) -> String {
    let s = format!("{:.0e}", n as f64);
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// The input shape and case name of `def` at `size`, or `None` where the size is not of the
/// loss's kind.
fn layout(def: &Def, size: Size) -> Option<(Vec<usize>, String)> {
    match (def.kind, size) {
        (Kind::Flat, Size::Elems(n)) => Some((vec![n], format!("{}/n={}", def.name(), c_exp(n)))),
        (Kind::Rows, Size::Elems(n)) => {
            let shape = if n >= ROW && n % ROW == 0 { vec![n / ROW, ROW] } else { vec![1, n] };
            Some((shape, format!("{}/n={}", def.name(), c_exp(n))))
        }
        (Kind::Class, Size::Class(b, c)) => Some((vec![b, c], format!("{}/{b}x{c}", def.name()))),
        _ => None,
    }
}

/// Repetition policy.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// Seconds of timed repetitions (at least `min_reps` of them).
    target_s: f64,
    min_reps: usize,
    max_reps: usize,
    /// Seconds of untimed warm-up calls (at least one).
    warmup_s: f64,
}

/// Order statistics of the timed repetitions, in seconds.
#[derive(Clone, Debug)]
struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
    min: f64,
    reps: usize,
}

impl Stats {
    fn of(mut s: Vec<f64>) -> Stats {
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let at = |q: f64| s[((n - 1) as f64 * q).round() as usize];
        let median = if n % 2 == 1 { s[n / 2] } else { 0.5 * (s[n / 2 - 1] + s[n / 2]) };
        Stats { median, p10: at(0.1), p90: at(0.9), min: s[0], reps: n }
    }
}

/// Calls `f` for warm-up, then times repetitions until `target_s` have passed and at least
/// `min_reps` were timed.
fn measure(t: &Timing, mut f: impl FnMut()) -> Stats {
    let start = Instant::now();
    f();
    while start.elapsed().as_secs_f64() < t.warmup_s {
        f();
    }
    let mut samples = Vec::with_capacity(64);
    let t0 = Instant::now();
    loop {
        let a = Instant::now();
        f();
        samples.push(a.elapsed().as_secs_f64());
        let enough = samples.len() >= t.min_reps && t0.elapsed().as_secs_f64() >= t.target_s;
        if enough || samples.len() >= t.max_reps {
            break;
        }
    }
    Stats::of(samples)
}

thread_local! {
    /// The pool of `t` threads this thread joined, kept for the thread's life: rayon lets a
    /// thread join one pool only, and never releases it.
    static JOINED: std::cell::RefCell<Option<(usize, Arc<rayon::ThreadPool>)>> = const { std::cell::RefCell::new(None) };
}

/// A pool of `t` threads of which the calling thread is one, so that the timed calls run (and
/// allocate, in the main thread's glibc arena) on the calling thread, as a program's calls to
/// the library do. `None` when this thread already joined a pool of another size.
fn joined_pool(t: usize) -> Option<Arc<rayon::ThreadPool>> {
    JOINED.with(|j| {
        let mut j = j.borrow_mut();
        if j.is_none() {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).use_current_thread().build().ok()?;
            *j = Some((t, Arc::new(pool)));
        }
        j.as_ref().filter(|(n, _)| *n == t).map(|(_, p)| Arc::clone(p))
    })
}

/// Deterministic inputs (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn uniform<T: Float>(&mut self, n: usize, lo: f64, hi: f64) -> Vec<T> {
        (0..n).map(|_| T::of(lo + (hi - lo) * self.unit())).collect()
    }

    /// 0 or 1.
    fn bits<T: Float>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::of((self.next_u64() >> 63) as f64)).collect()
    }

    /// -1 or +1.
    fn signs<T: Float>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::of(if self.next_u64() >> 63 == 0 { -1.0 } else { 1.0 })).collect()
    }

    /// Poisson-like counts 0..=4.
    fn counts<T: Float>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::of((self.unit() * 5.0).floor())).collect()
    }

    /// Class indices in `[0, c)`.
    fn classes(&mut self, n: usize, c: usize) -> Vec<i64> {
        (0..n).map(|_| (self.next_u64() % c as u64) as i64).collect()
    }
}

fn one_hot<T: Float>(labels: &[i64], c: usize) -> Vec<T> {
    let mut out = vec![T::of(0.0); labels.len() * c];
    for (row, &l) in out.chunks_exact_mut(c).zip(labels) {
        row[l as usize] = T::of(1.0);
    }
    out
}

/// What the selected cases need from the command line.
struct Plan {
    threads: Vec<(usize, Arc<rayon::ThreadPool>)>,
    /// `--check-threads`: compare bits across thread counts instead of timing.
    check_threads: bool,
    modes: Vec<Mode>,
    timing: Timing,
}

/// What one mode measured: the statistics, the loss's element count, the gradients written
/// (name, elements).
struct Measured {
    stats: Stats,
    out_elems: usize,
    grads: Vec<(String, usize)>,
}

/// A case being timed.
struct CaseInfo<'a> {
    def: &'a Def,
    case: String,
    shape: Vec<usize>,
    dtype: &'static str,
    elem_bytes: usize,
    /// Bytes of all the inputs (each read once).
    in_bytes: usize,
}

fn run_mode<T, F, G>(timing: &Timing, mode: Mode, fwd: &F, bwd: &G, into: &[(&str, usize)]) -> Result<Measured, String>
where
    T: Float,
    F: Fn() -> losskit::Result<Tensor<T>> + Sync,
    G: for<'u, 'g> Fn(Backward<'u, 'g, T>) -> losskit::Result<(Tensor<T>, Grads<T>)> + Sync,
{
    let grad_list = |g: &Grads<T>| g.iter().map(|(n, t)| (n.to_string(), t.data().len())).collect::<Vec<_>>();
    match mode {
        Mode::Fwd => {
            let first = fwd().map_err(|e| e.to_string())?;
            let out_elems = first.data().len();
            drop(first);
            let stats = measure(timing, || drop(black_box(fwd())));
            Ok(Measured { stats, out_elems, grads: Vec::new() })
        }
        Mode::FwdBwd => {
            let (loss, grads) = bwd(Backward::new()).map_err(|e| e.to_string())?;
            let (out_elems, grads) = (loss.data().len(), grad_list(&grads));
            let stats = measure(timing, || drop(black_box(bwd(Backward::new()))));
            Ok(Measured { stats, out_elems, grads })
        }
        Mode::FwdBwdInto => {
            let mut bufs: Vec<Vec<T>> = into.iter().map(|&(_, len)| vec![T::of(0.0); len]).collect();
            let mut call = || {
                let mut gm = GradsMut::new();
                for (&(name, _), b) in into.iter().zip(bufs.iter_mut()) {
                    gm = gm.with(name, b.as_mut_slice());
                }
                bwd(Backward::new().into_buffers(gm))
            };
            let (loss, extra) = call().map_err(|e| e.to_string())?;
            let out_elems = loss.data().len();
            // anything the library still allocated is written too
            let mut grads: Vec<(String, usize)> = into.iter().map(|&(n, len)| (n.to_string(), len)).collect();
            grads.extend(grad_list(&extra));
            let stats = measure(timing, || drop(black_box(call())));
            Ok(Measured { stats, out_elems, grads })
        }
    }
}

/// Collects records and prints the table as it goes.
///
/// `min_bytes` of a record: the inputs read once (for `nll` only the labelled element of each
/// row, all it needs), plus the loss and every gradient written once.
struct Runner<'p> {
    plan: &'p Plan,
    records: Vec<Value>,
    /// Measured read bandwidth (GB/s) by thread count, when --stream ran.
    read_bw: Vec<(usize, f64)>,
}

/// Writes one line to stdout now (a closed pipe is not an error: the run goes on for --json).
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.2} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

impl Runner<'_> {
    fn time<T, F, G>(&mut self, c: &CaseInfo<'_>, fwd: F, bwd: G, into: &[(&str, usize)]) -> Result<(), String>
    where
        T: Float,
        F: Fn() -> losskit::Result<Tensor<T>> + Sync,
        G: for<'u, 'g> Fn(Backward<'u, 'g, T>) -> losskit::Result<(Tensor<T>, Grads<T>)> + Sync,
    {
        let plan = self.plan;
        if plan.check_threads {
            return self.check_threads(c, &fwd, &bwd);
        }
        for (threads, pool) in &plan.threads {
            for &mode in &plan.modes {
                let m = pool
                    .install(|| run_mode(&plan.timing, mode, &fwd, &bwd, into))
                    .map_err(|e| format!("{} ({}, {}): {e}", c.case, c.dtype, mode.name()))?;
                self.record(c, *threads, mode, &m);
            }
        }
        Ok(())
    }

    /// `--check-threads`: the value and the gradients of `c` on every thread count, bit for bit.
    fn check_threads<T, F, G>(&mut self, c: &CaseInfo<'_>, fwd: &F, bwd: &G) -> Result<(), String>
    where
        T: Float,
        F: Fn() -> losskit::Result<Tensor<T>> + Sync,
        G: for<'u, 'g> Fn(Backward<'u, 'g, T>) -> losskit::Result<(Tensor<T>, Grads<T>)> + Sync,
    {
        let bits = |t: &Tensor<T>| t.data().iter().map(|v| v.f64().to_bits()).collect::<Vec<u64>>();
        let mut first: Option<(usize, Vec<Outputs>)> = None;
        for (threads, pool) in &self.plan.threads {
            let out = pool.install(|| -> losskit::Result<Vec<Outputs>> {
                let mut out = vec![("value (fwd)".to_string(), bits(&fwd()?))];
                let (loss, grads) = bwd(Backward::new())?;
                out.push(("value (fwd_bwd)".to_string(), bits(&loss)));
                out.extend(grads.iter().map(|(n, g)| (format!("gradient of {n}"), bits(g))));
                Ok(out)
            });
            let out = out.map_err(|e| format!("{} ({}): {e}", c.case, c.dtype))?;
            match &first {
                None => first = Some((*threads, out)),
                Some((t0, want)) => {
                    for ((name, a), (_, b)) in want.iter().zip(&out) {
                        if a != b {
                            return Err(format!(
                                "{} ({}): the {name} differs between {t0} and {threads} threads",
                                c.case, c.dtype
                            ));
                        }
                    }
                }
            }
        }
        let counts: Vec<String> = self.plan.threads.iter().map(|(t, _)| t.to_string()).collect();
        emit(&format!("{:44} {:4} same bits on {} threads", c.case, c.dtype, counts.join(", ")));
        self.records.push(json!({"peer": "check", "case": c.case, "dtype": c.dtype}));
        Ok(())
    }

    fn record(&mut self, c: &CaseInfo<'_>, threads: usize, mode: Mode, m: &Measured) {
        let elements = numel(&c.shape);
        let grad_elems: usize = m.grads.iter().map(|(_, n)| n).sum();
        let min_bytes = c.in_bytes + (m.out_elems + grad_elems) * c.elem_bytes;
        let s = &m.stats;
        let gelem = elements as f64 / s.median / 1e9;
        let gbps = min_bytes as f64 / s.median / 1e9;
        self.records.push(json!({
            "peer": "losskit",
            "case": c.case,
            "loss": c.def.id,
            "shape": c.shape,
            "elements": elements,
            "threads": threads,
            "mode": mode.name(),
            "median_s": s.median,
            "p10_s": s.p10,
            "p90_s": s.p90,
            "reps": s.reps,
            "gelem_per_s": gelem,
            "min_bytes": min_bytes,
            "eff_gbps": gbps,
            "dtype": c.dtype,
            "grads": m.grads.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            "options": c.def.options,
            "variant": c.def.variant,
        }));
        let frac = match self.read_bw.iter().find(|(t, _)| *t == threads) {
            Some((_, bw)) => format!("{:5.0}%", 100.0 * gbps / bw),
            None => "     -".into(),
        };
        emit(&format!(
            "{:44} {:4} {:>3} {:13} {:>11} {:>11} {:>11} {:>7} {:>8.3} {:>8.2} {}",
            c.case,
            c.dtype,
            threads,
            mode.name(),
            fmt_time(s.median),
            fmt_time(s.p10),
            fmt_time(s.p90),
            s.reps,
            gelem,
            gbps,
            frac
        ));
    }
}

/// One output of a case (its name) and its bits.
type Outputs = (String, Vec<u64>);

fn view<'a, T: Clone>(data: &'a [T], shape: &[usize]) -> Result<View<'a, T>, String> {
    View::new(data, shape).map_err(|e| e.to_string())
}

/// Builds the inputs of one loss at one shape and times it in every mode and thread count.
fn bench_loss<T: Float>(r: &mut Runner<'_>, def: &Def, shape: &[usize], case: String) -> Result<(), String> {
    use losskit::*;
    let n = numel(shape);
    let eb = std::mem::size_of::<T>();
    let mut rng = Rng(0x5EED_1055_u64 ^ (n as u64));
    let info = |in_bytes: usize| CaseInfo {
        def,
        case: case.clone(),
        shape: shape.to_vec(),
        dtype: if eb == 4 { "f32" } else { "f64" },
        elem_bytes: eb,
        in_bytes,
    };
    // class-dimension losses: (B, C) and B labels
    let (b, c) = (shape[0], shape.get(1).copied().unwrap_or(1));
    let lab_bytes = b * std::mem::size_of::<i64>();
    match def.id {
        "mse" | "l1" | "huber" | "smooth_l1" => {
            let (x, t) = (rng.uniform::<T>(n, -2.0, 2.0), rng.uniform::<T>(n, -2.0, 2.0));
            let (x, t) = (view(&x, shape)?, view(&t, shape)?);
            let ci = info(2 * n * eb);
            let into = [("input", n)];
            match def.id {
                "mse" => {
                    let o = MseOptions::default();
                    r.time(
                        &ci,
                        || mse(x.borrow(), t.borrow(), None, &o),
                        |bw| mse_grad(x.borrow(), t.borrow(), None, &o, bw),
                        &into,
                    )
                }
                "l1" => {
                    let o = L1Options::default();
                    r.time(
                        &ci,
                        || l1(x.borrow(), t.borrow(), None, &o),
                        |bw| l1_grad(x.borrow(), t.borrow(), None, &o, bw),
                        &into,
                    )
                }
                "huber" => {
                    let o = HuberOptions::default();
                    r.time(
                        &ci,
                        || huber(x.borrow(), t.borrow(), None, &o),
                        |bw| huber_grad(x.borrow(), t.borrow(), None, &o, bw),
                        &into,
                    )
                }
                _ => {
                    let o = SmoothL1Options::default();
                    r.time(
                        &ci,
                        || smooth_l1(x.borrow(), t.borrow(), &o),
                        |bw| smooth_l1_grad(x.borrow(), t.borrow(), &o, bw),
                        &into,
                    )
                }
            }
        }
        "log_cosh"
        | "mean_absolute_percentage_error"
        | "mean_squared_logarithmic_error"
        | "poisson"
        | "kl_divergence"
        | "squared_hinge"
        | "binary_crossentropy"
        | "cosine_similarity" => {
            // Keras (y_true, y_pred) pairs over rows
            let (yt, yp) = match def.id {
                "log_cosh" | "cosine_similarity" => (rng.uniform::<T>(n, -2.0, 2.0), rng.uniform::<T>(n, -2.0, 2.0)),
                "mean_absolute_percentage_error" => (rng.uniform::<T>(n, 0.5, 2.0), rng.uniform::<T>(n, 0.5, 2.0)),
                "mean_squared_logarithmic_error" => (rng.uniform::<T>(n, 0.0, 2.0), rng.uniform::<T>(n, 0.0, 2.0)),
                "poisson" => (rng.counts::<T>(n), rng.uniform::<T>(n, 0.1, 3.0)),
                "kl_divergence" => (rng.uniform::<T>(n, 1e-3, 1.0), rng.uniform::<T>(n, 1e-3, 1.0)),
                "squared_hinge" => (rng.signs::<T>(n), rng.uniform::<T>(n, -2.0, 2.0)),
                _ => (rng.bits::<T>(n), rng.uniform::<T>(n, -4.0, 4.0)),
            };
            let (yt, yp) = (view(&yt, shape)?, view(&yp, shape)?);
            let ci = info(2 * n * eb);
            let into = [("y_pred", n)];
            macro_rules! keras {
                ($f:ident, $g:ident, $o:expr) => {{
                    let o = $o;
                    r.time(
                        &ci,
                        || $f(yt.borrow(), yp.borrow(), None, &o),
                        |bw| $g(yt.borrow(), yp.borrow(), None, &o, bw),
                        &into,
                    )
                }};
            }
            match def.id {
                "log_cosh" => keras!(log_cosh, log_cosh_grad, LogCoshOptions::default()),
                "mean_absolute_percentage_error" => keras!(
                    mean_absolute_percentage_error,
                    mean_absolute_percentage_error_grad,
                    MeanAbsolutePercentageErrorOptions::default()
                ),
                "mean_squared_logarithmic_error" => keras!(
                    mean_squared_logarithmic_error,
                    mean_squared_logarithmic_error_grad,
                    MeanSquaredLogarithmicErrorOptions::default()
                ),
                "poisson" => keras!(poisson, poisson_grad, PoissonOptions::default()),
                "kl_divergence" => keras!(kl_divergence, kl_divergence_grad, KlDivergenceOptions::default()),
                "squared_hinge" => keras!(squared_hinge, squared_hinge_grad, SquaredHingeOptions::default()),
                "cosine_similarity" => {
                    keras!(cosine_similarity, cosine_similarity_grad, CosineSimilarityOptions::default())
                }
                _ => keras!(
                    binary_crossentropy,
                    binary_crossentropy_grad,
                    BinaryCrossentropyOptions { from_logits: true, ..Default::default() }
                ),
            }
        }
        "binary_cross_entropy" | "binary_cross_entropy_with_logits" => {
            let x = if def.id == "binary_cross_entropy" {
                rng.uniform::<T>(n, 0.01, 0.99)
            } else {
                rng.uniform::<T>(n, -4.0, 4.0)
            };
            let t = rng.bits::<T>(n);
            let (x, t) = (view(&x, shape)?, view(&t, shape)?);
            let ci = info(2 * n * eb);
            let into = [("input", n)];
            if def.id == "binary_cross_entropy" {
                let o = BinaryCrossEntropyOptions::default();
                r.time(
                    &ci,
                    || binary_cross_entropy(x.borrow(), t.borrow(), None, &o),
                    |bw| binary_cross_entropy_grad(x.borrow(), t.borrow(), None, &o, bw),
                    &into,
                )
            } else {
                let o = BinaryCrossEntropyWithLogitsOptions::default();
                r.time(
                    &ci,
                    || binary_cross_entropy_with_logits(x.borrow(), t.borrow(), None, None, &o),
                    |bw| binary_cross_entropy_with_logits_grad(x.borrow(), t.borrow(), None, None, &o, bw),
                    &into,
                )
            }
        }
        "log_softmax" => {
            let x = rng.uniform::<T>(n, -4.0, 4.0);
            let x = view(&x, shape)?;
            let o = LogSoftmaxOptions::new(1);
            r.time(
                &info(n * eb),
                || log_softmax(x.borrow(), &o),
                |bw| log_softmax_grad(x.borrow(), &o, bw),
                &[("input", n)],
            )
        }
        "cross_entropy" | "nll" | "sparse_categorical_crossentropy" | "multiclass_hinge" => {
            let x = if def.id == "nll" { rng.uniform::<T>(n, -10.0, 0.0) } else { rng.uniform::<T>(n, -4.0, 4.0) };
            let labels = rng.classes(b, c);
            let (x, y) = (view(&x, shape)?, view(&labels, &shape[..1])?);
            // nll needs only the labelled element of each row: B elements, not B x C
            let ci = info(if def.id == "nll" { b * eb } else { n * eb } + lab_bytes);
            match def.id {
                "cross_entropy" if def.variant == "probabilities" => {
                    // rows of class probabilities (uniform draws scaled to sum to 1): one more
                    // B x C input to read, and only the input's gradient in fwd_bwd_into
                    let mut p = rng.uniform::<T>(n, 0.0, 1.0);
                    for row in p.chunks_mut(c) {
                        let s: f64 = row.iter().map(|v| v.f64()).sum();
                        row.iter_mut().for_each(|v| *v = T::of(v.f64() / s));
                    }
                    let p = view(&p, shape)?;
                    let o = CrossEntropyOptions::default();
                    let target = || CrossEntropyTarget::Probabilities(p.borrow());
                    r.time(
                        &info(2 * n * eb),
                        || cross_entropy(x.borrow(), target(), None, &o),
                        |bw| cross_entropy_grad(x.borrow(), target(), None, &o, bw),
                        &[("input", n)],
                    )
                }
                "cross_entropy" => {
                    let o = match def.variant {
                        "label_smoothing" => CrossEntropyOptions { label_smoothing: 0.1, ..Default::default() },
                        _ => CrossEntropyOptions::default(),
                    };
                    r.time(
                        &ci,
                        || cross_entropy(x.borrow(), CrossEntropyTarget::Indices(y.borrow()), None, &o),
                        |bw| cross_entropy_grad(x.borrow(), CrossEntropyTarget::Indices(y.borrow()), None, &o, bw),
                        &[("input", n)],
                    )
                }
                "nll" => {
                    let o = NllOptions::default();
                    r.time(
                        &ci,
                        || nll(x.borrow(), y.borrow(), None, &o),
                        |bw| nll_grad(x.borrow(), y.borrow(), None, &o, bw),
                        &[("input", n)],
                    )
                }
                "sparse_categorical_crossentropy" => {
                    let o = SparseCategoricalCrossentropyOptions { from_logits: true, ..Default::default() };
                    r.time(
                        &ci,
                        || sparse_categorical_crossentropy(y.borrow(), x.borrow(), None, &o),
                        |bw| sparse_categorical_crossentropy_grad(y.borrow(), x.borrow(), None, &o, bw),
                        &[("y_pred", n)],
                    )
                }
                _ => r.time(
                    &ci,
                    || multiclass_hinge(x.borrow(), y.borrow()),
                    |bw| multiclass_hinge_grad(x.borrow(), y.borrow(), bw),
                    &[("scores", n)],
                ),
            }
        }
        "categorical_crossentropy" => {
            let yp = rng.uniform::<T>(n, -4.0, 4.0);
            let yt = one_hot::<T>(&rng.classes(b, c), c);
            let (yt, yp) = (view(&yt, shape)?, view(&yp, shape)?);
            let o = CategoricalCrossentropyOptions { from_logits: true, ..Default::default() };
            r.time(
                &info(2 * n * eb),
                || categorical_crossentropy(yt.borrow(), yp.borrow(), None, &o),
                |bw| categorical_crossentropy_grad(yt.borrow(), yp.borrow(), None, &o, bw),
                &[("y_pred", n)],
            )
        }
        "margin_ranking" => {
            let (x1, x2, t) = (rng.uniform::<T>(n, -2.0, 2.0), rng.uniform::<T>(n, -2.0, 2.0), rng.signs::<T>(n));
            let (x1, x2, t) = (view(&x1, shape)?, view(&x2, shape)?, view(&t, shape)?);
            let o = MarginRankingOptions::default();
            r.time(
                &info(3 * n * eb),
                || margin_ranking(x1.borrow(), x2.borrow(), t.borrow(), &o),
                |bw| margin_ranking_grad(x1.borrow(), x2.borrow(), t.borrow(), &o, bw),
                &[("input1", n), ("input2", n)],
            )
        }
        "triplet_margin" => {
            let a = rng.uniform::<T>(n, -2.0, 2.0);
            let (p, q) = (rng.uniform::<T>(n, -2.0, 2.0), rng.uniform::<T>(n, -2.0, 2.0));
            let (a, p, q) = (view(&a, shape)?, view(&p, shape)?, view(&q, shape)?);
            let o = TripletMarginOptions::default();
            r.time(
                &info(3 * n * eb),
                || triplet_margin(a.borrow(), p.borrow(), q.borrow(), &o),
                |bw| triplet_margin_grad(a.borrow(), p.borrow(), q.borrow(), &o, bw),
                &[("anchor", n), ("positive", n), ("negative", n)],
            )
        }
        other => Err(format!("no benchmark case for `{other}` (add one to crates/losskit-cli/src/bench.rs)")),
    }
}

/// Sum with 16 independent accumulators, so that the compiler vectorises it and the probe is
/// bound by memory, not by the latency of one add chain.
fn read_sum(a: &[f64]) -> f64 {
    let mut acc = [0.0f64; 16];
    let chunks = a.chunks_exact(16);
    let tail: f64 = chunks.remainder().iter().sum();
    for ch in chunks {
        for (s, v) in acc.iter_mut().zip(ch) {
            *s += v;
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn triad(a: &mut [f64], b: &[f64], c: &[f64], s: f64) {
    for ((x, y), z) in a.iter_mut().zip(b).zip(c) {
        *x = y + s * z;
    }
}

/// The STREAM-style probe: per thread count, a read-only sum over one array and the triad
/// `a = b + s*c` over three (bytes counted as STREAM does: 8 per element per array, no
/// write-allocate). Arrays of 2^25 f64 (256 MiB each), far beyond any last-level cache.
fn stream_probe(r: &mut Runner<'_>, quick: bool) {
    let n: usize = if quick { 1 << 20 } else { 1 << 25 };
    let timing = Timing { min_reps: if quick { 3 } else { 10 }, ..r.plan.timing };
    let mut a = vec![0.0f64; n];
    let mut b = vec![0.0f64; n];
    let mut c = vec![0.0f64; n];
    emit(&format!(
        "{:44} {:4} {:>3} {:13} {:>11} {:>11} {:>11} {:>7} {:>8} {:>8}",
        "stream probe", "", "thr", "kernel", "median", "p10", "p90", "reps", "", "GB/s (best)"
    ));
    for (threads, pool) in &r.plan.threads {
        let chunk = n.div_ceil(*threads);
        pool.install(|| {
            // first touch by the threads that read them
            a.par_chunks_mut(chunk).for_each(|x| x.fill(1.0));
            b.par_chunks_mut(chunk).for_each(|x| x.fill(2.0));
            c.par_chunks_mut(chunk).for_each(|x| x.fill(0.5));
        });
        let read = pool.install(|| {
            measure(&timing, || {
                black_box(b.par_chunks(chunk).map(read_sum).sum::<f64>());
            })
        });
        let tri = pool.install(|| {
            measure(&timing, || {
                a.par_chunks_mut(chunk)
                    .zip(b.par_chunks(chunk))
                    .zip(c.par_chunks(chunk))
                    .for_each(|((x, y), z)| triad(x, y, z, black_box(3.0)));
                black_box(&a);
            })
        });
        for (kernel, st, bytes) in [("read", read, n * 8), ("triad", tri, 3 * n * 8)] {
            let gbps = bytes as f64 / st.median / 1e9;
            let best = bytes as f64 / st.min / 1e9;
            if kernel == "read" {
                r.read_bw.push((*threads, gbps));
            }
            r.records.push(json!({
                "peer": "stream",
                "case": format!("stream/{kernel}/n={}", c_exp(n)),
                "kernel": kernel,
                "dtype": "f64",
                "elements": n,
                "threads": threads,
                "bytes": bytes,
                "median_s": st.median,
                "p10_s": st.p10,
                "p90_s": st.p90,
                "reps": st.reps,
                "gbps": gbps,
                "best_gbps": best,
            }));
            emit(&format!(
                "{:44} {:4} {:>3} {:13} {:>11} {:>11} {:>11} {:>7} {:>8} {:>8.2} ({best:.2})",
                format!("stream/{kernel}/n={}", c_exp(n)),
                "f64",
                threads,
                kernel,
                fmt_time(st.median),
                fmt_time(st.p10),
                fmt_time(st.p90),
                st.reps,
                "",
                gbps
            ));
        }
    }
    emit("");
}

/// Runs `losskit bench`; the table goes to stdout as it is measured, the returned text is the
/// closing summary.
pub fn run(a: &BenchArgs) -> Result<String, String> {
    // selection first: every error before anything is timed
    // the cases to run: every case of each named loss (its variants too), or `ID@VARIANT` alone
    let (ids, defs): (Vec<&'static str>, Vec<&'static Def>) = if a.ids.is_empty() {
        let ids: Vec<&'static str> = if a.stream { Vec::new() } else { catalog::specs().map(|s| s.id).collect() };
        let defs = DEFS.iter().filter(|d| ids.contains(&d.id)).collect();
        (ids, defs)
    } else {
        let (mut ids, mut defs) = (Vec::new(), Vec::<&'static Def>::new());
        for name in &a.ids {
            let (id, variant) = match name.trim().split_once('@') {
                Some((id, v)) => (id, Some(v)),
                None => (name.trim(), None),
            };
            let e = catalog::lookup(id).map_err(|e| e.to_string())?;
            let picked: Vec<&'static Def> =
                DEFS.iter().filter(|d| d.id == e.spec.id && variant.is_none_or(|v| d.variant == v)).collect();
            if picked.is_empty() {
                let known: Vec<String> = DEFS.iter().filter(|d| d.id == e.spec.id).map(Def::name).collect();
                return Err(match known.is_empty() {
                    true => format!("no benchmark case for `{name}` (add one to crates/losskit-cli/src/bench.rs)"),
                    false => format!("no benchmark case `{name}`; this loss has: {}", known.join(", ")),
                });
            }
            if !ids.contains(&e.spec.id) {
                ids.push(e.spec.id);
            }
            for d in picked {
                if !defs.iter().any(|k| std::ptr::eq(*k, d)) {
                    defs.push(d);
                }
            }
        }
        (ids, defs)
    };
    let skipped: Vec<&str> = ids.iter().copied().filter(|id| !DEFS.iter().any(|d| d.id == *id)).collect();
    let sizes: Vec<Size> = if !a.sizes.is_empty() {
        a.sizes.iter().map(|s| parse_size(s)).collect::<Result<_, _>>()?
    } else if a.quick {
        QUICK_SIZES.to_vec()
    } else {
        DEFAULT_SIZES.to_vec()
    };
    if a.threads.is_empty() || a.threads.contains(&0) {
        return Err("--threads: thread counts must be at least 1".into());
    }
    let target_s = a.time.unwrap_or(if a.quick { 0.01 } else { 0.3 });
    if !(target_s.is_finite() && target_s >= 0.0) {
        return Err("--time: expected a non-negative number of seconds".into());
    }
    let min_reps = a.min_reps.unwrap_or(if a.quick { 3 } else { 5 }).max(1);
    let timing = Timing { target_s, min_reps, max_reps: 1_000_000, warmup_s: target_s / 5.0 };
    let mut counts = a.threads.clone();
    counts.dedup();
    let mut threads = Vec::new();
    for &t in &counts {
        if threads.iter().any(|(n, _)| *n == t) {
            continue;
        }
        let joined = if counts.len() == 1 { joined_pool(t) } else { None };
        let pool = match joined {
            Some(p) => p,
            None => Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| format!("--threads {t}: cannot start a thread pool: {e}"))?,
            ),
        };
        threads.push((t, pool));
    }
    let mut modes = a.modes.clone();
    modes.dedup();
    let plan = Plan { threads, check_threads: a.check_threads, modes, timing };
    let mut runner = Runner { plan: &plan, records: Vec::new(), read_bw: Vec::new() };

    if a.stream {
        stream_probe(&mut runner, a.quick);
    }
    if !ids.is_empty() && !a.check_threads {
        emit(&format!(
            "{:44} {:4} {:>3} {:13} {:>11} {:>11} {:>11} {:>7} {:>8} {:>8} {:>6}",
            "case", "dtype", "thr", "mode", "median", "p10", "p90", "reps", "Gelem/s", "GB/s", "%bw"
        ));
    }
    let mut none_of_kind = Vec::new();
    for def in defs {
        let mut any = false;
        for &size in &sizes {
            let Some((shape, case)) = layout(def, size) else { continue };
            any = true;
            for &dt in &a.dtypes {
                match dt {
                    Dt::F32 => bench_loss::<f32>(&mut runner, def, &shape, case.clone())?,
                    Dt::F64 => bench_loss::<f64>(&mut runner, def, &shape, case.clone())?,
                }
            }
        }
        if !any && !none_of_kind.contains(&def.id) {
            none_of_kind.push(def.id);
        }
    }

    let mut summary = String::new();
    let timed = runner.records.iter().filter(|r| r["peer"] == "losskit").count();
    if a.check_threads {
        let checked = runner.records.iter().filter(|r| r["peer"] == "check").count();
        summary.push_str(&format!("\n{checked} cases: the same bits on every thread count\n"));
    } else if !ids.is_empty() {
        summary.push_str(&format!(
            "\n{timed} records; GB/s = min_bytes / median (inputs read once, the loss and the gradients written \
             once){}\n",
            if runner.read_bw.is_empty() { "" } else { "; %bw = GB/s / the stream read bandwidth" }
        ));
    }
    if !none_of_kind.is_empty() {
        summary.push_str(&format!("no size of their kind in --sizes: {}\n", none_of_kind.join(", ")));
    }
    if !skipped.is_empty() {
        summary.push_str(&format!("not benchmarked (no case in bench.rs yet): {}\n", skipped.join(", ")));
    }
    if let Some(path) = &a.json {
        let lines: Vec<String> = runner.records.iter().map(|r| r.to_string()).collect();
        let text = format!("[\n{}\n]\n", lines.join(",\n"));
        std::fs::write(path, text).map_err(|e| format!("--json {}: cannot write: {e}", path.display()))?;
        summary.push_str(&format!("wrote {} records to {}\n", runner.records.len(), path.display()));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_follow_printf_exponents() {
        assert_eq!(c_exp(10_000_000), "1e+07");
        assert_eq!(c_exp(10_000), "1e+04");
        assert_eq!(c_exp(1), "1e+00");
        let def = &DEFS[0];
        assert_eq!(layout(def, Size::Elems(10_000_000)).map(|l| l.1).as_deref(), Some("mse/n=1e+07"));
        assert_eq!(layout(def, Size::Class(4, 5)), None);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1e6"), Ok(Size::Elems(1_000_000)));
        assert_eq!(parse_size("1000"), Ok(Size::Elems(1000)));
        assert_eq!(parse_size("4096x1000"), Ok(Size::Class(4096, 1000)));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("x3").is_err());
    }

    /// Every loss with a benchmark case, above the size where work is split over threads
    /// (several chunks of elements or rows), in both dtypes: the value and every gradient have
    /// the same bits on 1, 2 and 3 threads.
    #[test]
    fn same_bits_whatever_the_thread_count() {
        let args = BenchArgs {
            ids: Vec::new(),
            threads: vec![1, 2, 3],
            sizes: vec!["3e5".into(), "600x500".into(), "20000x10".into()],
            dtypes: vec![Dt::F32, Dt::F64],
            modes: vec![Mode::Fwd],
            json: None,
            quick: false,
            stream: false,
            time: None,
            min_reps: None,
            check_threads: true,
        };
        let summary = run(&args).unwrap();
        // one elementwise size, two class sizes, two dtypes: every case was checked
        let cases: usize = DEFS.iter().map(|d| if d.kind == Kind::Class { 4 } else { 2 }).sum();
        assert!(summary.contains(&format!("\n{cases} cases: the same bits on every thread count")), "{summary}");
    }

    #[test]
    fn variants_are_selected_by_name() {
        let args = |ids: &[&str]| BenchArgs {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            threads: vec![1],
            sizes: vec!["8x5".into()],
            dtypes: vec![Dt::F32],
            modes: vec![Mode::Fwd],
            json: None,
            quick: false,
            stream: false,
            time: Some(0.0),
            min_reps: Some(1),
            check_threads: false,
        };
        // a plain id runs the loss's main case and its variants; ID@VARIANT that case alone
        assert!(run(&args(&["cross_entropy"])).unwrap().contains("\n3 records;"));
        assert!(run(&args(&["cross_entropy@label_smoothing"])).unwrap().contains("\n1 records;"));
        let e = run(&args(&["cross_entropy@nope"])).unwrap_err();
        assert!(e.contains("cross_entropy@label_smoothing") && e.contains("cross_entropy@probabilities"), "{e}");
        assert!(run(&args(&["mse@x"])).is_err());
        let def = DEFS.iter().find(|d| d.variant == "probabilities").unwrap();
        assert_eq!(layout(def, Size::Class(4, 5)).map(|l| l.1).as_deref(), Some("cross_entropy@probabilities/4x5"));
    }

    #[test]
    fn stats_order() {
        let s = Stats::of(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.median, s.min, s.reps), (3.0, 1.0, 5));
    }
}

//! Reading NumPy `.npy` arguments (format 1.0 to 3.0, either byte order, C or Fortran order)
//! and writing results (format 1.0, little-endian, C order).

use std::fs;
use std::io::{Cursor, Write};
use std::path::Path;

use losskit::catalog::ArrayArg;
use losskit::Tensor;
use npyz::{DType, NpyFile, Order, TypeChar};

/// Reads `path` as the array of argument `arg`. Errors are one line naming the argument.
pub fn read_arg(arg: &str, path: &Path) -> Result<ArrayArg, String> {
    let bytes = fs::read(path).map_err(|e| format!("argument `{arg}`: cannot read {}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("argument `{arg}`: {} is not a valid .npy file: {e}", path.display()))
}

fn parse(bytes: &[u8]) -> Result<ArrayArg, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing the NumPy magic string".into());
    }
    if !(1..=3).contains(&bytes[6]) {
        return Err(format!("unsupported format version {}.{}", bytes[6], bytes[7]));
    }
    let mut cur = Cursor::new(bytes);
    let file = NpyFile::new(&mut cur).map_err(|e| format!("bad header ({e})"))?;
    let shape: Vec<usize> = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| "dimension too large".to_string()))
        .collect::<Result<_, _>>()?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("shape too large")?;
    // an empty array holds no data that bounds its other axes; losses size outputs from them
    let extent = shape.iter().filter(|&&d| d != 0).try_fold(1usize, |a, &d| a.checked_mul(d));
    if extent.is_none_or(|e| e > losskit::MAX_ELEMENTS) {
        return Err(format!(
            "shape {shape:?} spans more than {} elements along its non-empty axes",
            losskit::MAX_ELEMENTS
        ));
    }
    let order = file.order();
    let ts = match file.dtype() {
        DType::Plain(ts) => ts,
        other => return Err(format!("unsupported dtype {}", other.descr())),
    };
    let size = ts.size_field() as usize;
    let header_end = cur.position() as usize;
    let data_len = n.checked_mul(size).ok_or("shape too large")?;
    let available = bytes.len() - header_end;
    if available < data_len {
        return Err(format!("truncated data: {available} bytes for {n} elements of {size} bytes"));
    }
    if available > data_len {
        return Err(format!("{} unexpected bytes after the data", available - data_len));
    }
    let file = NpyFile::new(Cursor::new(bytes)).map_err(|e| format!("bad header ({e})"))?;
    let io = |e: std::io::Error| format!("bad data ({e})");
    let arg = match (ts.type_char(), size) {
        (TypeChar::Float, 4) => ArrayArg::F32(tensor(file.into_vec::<f32>().map_err(io)?, &shape, order)?),
        (TypeChar::Float, 8) => ArrayArg::F64(tensor(file.into_vec::<f64>().map_err(io)?, &shape, order)?),
        (TypeChar::Int, 1) => ints(file.into_vec::<i8>().map_err(io)?, &shape, order)?,
        (TypeChar::Int, 2) => ints(file.into_vec::<i16>().map_err(io)?, &shape, order)?,
        (TypeChar::Int, 4) => ints(file.into_vec::<i32>().map_err(io)?, &shape, order)?,
        (TypeChar::Int, 8) => ints(file.into_vec::<i64>().map_err(io)?, &shape, order)?,
        (TypeChar::Uint, 1) => ints(file.into_vec::<u8>().map_err(io)?, &shape, order)?,
        (TypeChar::Uint, 2) => ints(file.into_vec::<u16>().map_err(io)?, &shape, order)?,
        (TypeChar::Uint, 4) => ints(file.into_vec::<u32>().map_err(io)?, &shape, order)?,
        (TypeChar::Uint, 8) => {
            let v = file.into_vec::<u64>().map_err(io)?;
            let v: Vec<i64> = v
                .into_iter()
                .map(|x| i64::try_from(x).map_err(|_| format!("uint64 value {x} does not fit in int64")))
                .collect::<Result<_, _>>()?;
            ArrayArg::Int(tensor(v, &shape, order)?)
        }
        (TypeChar::Bool, 1) => ArrayArg::Bool(tensor(file.into_vec::<bool>().map_err(io)?, &shape, order)?),
        _ => return Err(format!("unsupported dtype '{}' (supported: float32, float64, int8-64, uint8-64, bool)", ts)),
    };
    Ok(arg)
}

fn ints<I: Into<i64>>(v: Vec<I>, shape: &[usize], order: Order) -> Result<ArrayArg, String> {
    let v: Vec<i64> = v.into_iter().map(Into::into).collect();
    Ok(ArrayArg::Int(tensor(v, shape, order)?))
}

/// Builds a C-order tensor from file-order data.
fn tensor<T: Clone + Default>(data: Vec<T>, shape: &[usize], order: Order) -> Result<Tensor<T>, String> {
    let data = match order {
        Order::C => data,
        Order::Fortran if shape.len() >= 2 => fortran_to_c(&data, shape),
        Order::Fortran => data,
    };
    Tensor::new(data, shape.to_vec()).map_err(|e| e.to_string())
}

fn fortran_to_c<T: Clone + Default>(f: &[T], shape: &[usize]) -> Vec<T> {
    let nd = shape.len();
    // Fortran strides: first axis fastest
    let mut fstride = vec![1usize; nd];
    for k in 1..nd {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; nd];
    for _ in 0..n {
        let off: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        out.push(f[off].clone());
        // C-order odometer
        for k in (0..nd).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// Element types `write` can store.
pub trait NpyElem: Copy {
    /// NumPy's descr.
    const DESCR: &'static str;
    /// Little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
}

impl NpyElem for f32 {
    const DESCR: &'static str = "<f4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElem for f64 {
    const DESCR: &'static str = "<f8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// The bytes of a format-1.0 `.npy` file holding `data` with `shape` (C order).
pub fn encode<T: NpyElem>(data: &[T], shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", T::DESCR, shape_txt);
    // pad so that magic (6) + version (2) + length (2) + header is a multiple of 64
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in data {
        v.put(&mut out);
    }
    out
}

/// Writes `bytes` to `path` in full.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_fortran() {
        let bytes = encode(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(bytes.len() % 16, 0);
        match parse(&bytes).unwrap() {
            ArrayArg::F64(t) => {
                assert_eq!(t.shape(), &[2, 3]);
                assert_eq!(t.data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
            }
            other => panic!("{other:?}"),
        }
        // Fortran data of [[1, 2, 3], [4, 5, 6]] is 1 4 2 5 3 6
        assert_eq!(fortran_to_c(&[1, 4, 2, 5, 3, 6], &[2, 3]), vec![1, 2, 3, 4, 5, 6]);
        let scalar = encode(&[2.5f32], &[]);
        match parse(&scalar).unwrap() {
            ArrayArg::F32(t) => assert_eq!((t.shape(), t.data()), (&[][..], &[2.5f32][..])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupt_files_are_errors() {
        assert!(parse(b"not a numpy file at all").is_err());
        let mut bytes = encode(&[1.0f64, 2.0], &[2]);
        bytes.truncate(bytes.len() - 3);
        assert!(parse(&bytes).unwrap_err().contains("truncated"));
        let mut bytes = encode(&[1.0f64, 2.0], &[2]);
        bytes.push(0);
        assert!(parse(&bytes).is_err());
        let mut bytes = encode(&[1.0f64], &[1]);
        bytes[20] = b'#';
        assert!(parse(&bytes).is_err());
    }

    #[test]
    fn empty_arrays_with_huge_axes_are_errors() {
        // regression: (0, 10^12) is a valid empty array, but the losses sized buffers from its
        // 10^12 classes and aborted on the allocation
        let mut header = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1000000000000), }".to_string();
        header.push_str(&" ".repeat((64 - (10 + header.len() + 1) % 64) % 64));
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        assert!(parse(&bytes).unwrap_err().contains("non-empty axes"));
        assert!(parse(&encode::<f64>(&[], &[0, 30000])).is_ok());
    }
}

//! A MATLAB v5 `.mat` reader for what the data layouts need (Flowers-102's `imagelabels.mat` and
//! `setid.mat`): the named numeric arrays of a file, stored as plain `miMATRIX` elements or inside
//! zlib `miCOMPRESSED` ones, either byte order, as f64 in column-major order. Other arrays (cell,
//! struct, char, sparse, ...) are skipped.
//!
//! Written for untrusted bytes: every size is checked against the bytes present before anything
//! is allocated, a compressed element may expand to at most [`MAX_INFLATED`] bytes and all of a
//! file's together to at most [`MAX_INFLATED_TOTAL`], the arrays a caller does not ask for
//! ([`parse_only`]) are skipped after their header (a compressed one is inflated only that far)
//! instead of being converted and kept, the arrays kept hold at most [`MAX_VALUES`] values in all,
//! and nothing panics. (It replaces the `matfile` crate, whose parser overflowed `i32` on large dimensions,
//! a panic in debug builds found by the `flowers_mat` fuzz target, and inflated without bound.)

use std::io::Read;

/// The largest size a compressed element may expand to (Flowers-102's files hold 8,189 labels:
/// tens of KB).
pub const MAX_INFLATED: u64 = 64 << 20;

/// The most bytes all the compressed elements of one file may expand to together (a file of many
/// large elements otherwise reaches gigabytes one bounded element at a time). The headers of the
/// skipped arrays count too.
pub const MAX_INFLATED_TOTAL: u64 = 256 << 20;

/// The most values the arrays kept from one file may hold together (each becomes an f64: 8 bytes).
pub const MAX_VALUES: usize = 16 << 20;

/// Inflated bytes read to find a compressed array's class and name (the tag, the flags, the
/// dimensions and the name of any array MATLAB writes fit many times over).
const HEADER_PREFIX: u64 = 4096;

/// One numeric array of a .mat file.
#[derive(Clone, Debug, PartialEq)]
pub struct MatArray {
    /// The variable's name.
    pub name: String,
    /// Dimensions, as stored (MATLAB order).
    pub dims: Vec<usize>,
    /// The real part, column-major.
    pub values: Vec<f64>,
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// Numeric array classes: mxDOUBLE_CLASS (6) to mxUINT64_CLASS (15).
const NUMERIC_CLASSES: std::ops::RangeInclusive<u8> = 6..=15;

#[derive(Clone, Copy)]
struct Order {
    big: bool,
}

impl Order {
    fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }
}

/// One data element: its type and data.
struct Element<'a> {
    ty: u32,
    data: &'a [u8],
}

/// Splits the element at the start of `bytes` off; returns it and the rest. Data is padded to 8
/// bytes, except a compressed element's (as MATLAB writes them); a file may end unpadded.
fn element(bytes: &[u8], order: Order) -> Result<(Element<'_>, &[u8]), String> {
    if bytes.len() < 8 {
        return Err(format!(
            "{} stray bytes where a data element should start",
            bytes.len()
        ));
    }
    let first = order.u32(&bytes[..4]);
    if first >> 16 != 0 {
        // Small element: type and size in the first 4 bytes, up to 4 bytes of data in the next.
        let len = (first >> 16) as usize;
        if len > 4 {
            return Err(format!("a small data element of {len} bytes (at most 4)"));
        }
        let data = &bytes[4..4 + len];
        return Ok((
            Element {
                ty: first & 0xffff,
                data,
            },
            &bytes[8..],
        ));
    }
    let len = order.u32(&bytes[4..8]) as usize;
    let rest = &bytes[8..];
    if len > rest.len() {
        return Err(format!(
            "a data element of {len} bytes with {} bytes left in the file",
            rest.len()
        ));
    }
    let data = &rest[..len];
    let padded = if first == MI_COMPRESSED {
        len
    } else {
        len.div_ceil(8) * 8
    };
    Ok((Element { ty: first, data }, &rest[padded.min(rest.len())..]))
}

/// The values of a numeric element as f64.
fn numbers(e: &Element, order: Order) -> Result<Vec<f64>, String> {
    fn conv<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        data.chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks of N")))
            .collect()
    }
    let big = order.big;
    macro_rules! num {
        ($t:ty, $n:literal) => {{
            if !e.data.len().is_multiple_of($n) {
                return Err(format!("{} bytes of {}-byte numbers", e.data.len(), $n));
            }
            conv::<$n>(e.data, |b| {
                (if big {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                }) as f64
            })
        }};
    }
    Ok(match e.ty {
        MI_INT8 => num!(i8, 1),
        MI_UINT8 => num!(u8, 1),
        MI_INT16 => num!(i16, 2),
        MI_UINT16 => num!(u16, 2),
        MI_INT32 => num!(i32, 4),
        MI_UINT32 => num!(u32, 4),
        MI_SINGLE => num!(f32, 4),
        MI_DOUBLE => num!(f64, 8),
        MI_INT64 => num!(i64, 8),
        MI_UINT64 => num!(u64, 8),
        t => return Err(format!("data type {t} where numbers were expected")),
    })
}

/// What [`matrix_header`] reads before the values: the class, dimensions and name, and the rest of
/// the element's data.
struct Header<'a> {
    class: u8,
    dims: Vec<usize>,
    name: String,
    rest: &'a [u8],
}

/// The header of an `miMATRIX` element's data (flags, dimensions, name); `None` for an empty
/// array.
fn matrix_header(data: &[u8], order: Order) -> Result<Option<Header<'_>>, String> {
    if data.is_empty() {
        return Ok(None); // an empty array
    }
    let (flags, rest) = element(data, order)?;
    if flags.ty != MI_UINT32 || flags.data.len() != 8 {
        return Err("array flags are not two uint32 words".into());
    }
    let class = order.u32(&flags.data[..4]) as u8;
    let (dims, rest) = element(rest, order)?;
    if dims.ty != MI_INT32 || dims.data.len() < 8 || dims.data.len() % 4 != 0 {
        return Err("array dimensions are not two or more int32 values".into());
    }
    let dims: Vec<usize> = dims
        .data
        .chunks_exact(4)
        .map(|c| usize::try_from(order.u32(c) as i32).map_err(|_| "a negative dimension"))
        .collect::<Result<_, _>>()?;
    let (name, rest) = element(rest, order)?;
    if name.ty != MI_INT8 {
        return Err("the array name is not int8 text".into());
    }
    let name = String::from_utf8_lossy(name.data).into_owned();
    Ok(Some(Header {
        class,
        dims,
        name,
        rest,
    }))
}

/// Which arrays a parse keeps, and what it has kept so far.
struct Keep<'w> {
    /// `None`: every numeric array.
    wanted: Option<&'w [&'w str]>,
    arrays: Vec<MatArray>,
    /// Names of the numeric arrays skipped (not asked for, or a second array of a kept name).
    skipped: Vec<String>,
    values: usize,
}

impl Keep<'_> {
    /// Whether a numeric array called `name` is to be read.
    fn wants(&self, name: &str) -> bool {
        self.wanted.is_none_or(|w| w.contains(&name))
            && (self.wanted.is_none() || !self.arrays.iter().any(|a| a.name == name))
    }

    /// Reads and keeps the array of an `miMATRIX` element's data if it is numeric and wanted.
    fn matrix(&mut self, data: &[u8], order: Order) -> Result<(), String> {
        let Some(Header {
            class,
            dims,
            name,
            rest,
        }) = matrix_header(data, order)?
        else {
            return Ok(());
        };
        if !NUMERIC_CLASSES.contains(&class) {
            return Ok(());
        }
        if !self.wants(&name) {
            self.skipped.push(name);
            return Ok(());
        }
        let (real, _) = element(rest, order)?;
        let width = match real.ty {
            MI_INT8 | MI_UINT8 => 1,
            MI_INT16 | MI_UINT16 => 2,
            MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
            _ => 8,
        };
        if self.values + real.data.len() / width > MAX_VALUES {
            return Err(format!(
                "array '{name}' holds {} values: more than {} in all",
                real.data.len() / width,
                MAX_VALUES
            ));
        }
        let values = numbers(&real, order)?;
        let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count != Some(values.len()) {
            return Err(format!(
                "array '{name}' has dimensions {dims:?} but {} values",
                values.len()
            ));
        }
        self.values += values.len();
        self.arrays.push(MatArray { name, dims, values });
        Ok(())
    }
}

/// Inflates a compressed element's `data`, at most `limit` bytes (more is an error).
fn inflate(data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut inflated)
        .map_err(|err| format!("a compressed element does not inflate: {err}"))?;
    Ok(inflated)
}

/// The numeric arrays of a MATLAB v5 .mat file, in file order. The error says what is wrong (the
/// caller names the file).
pub fn parse(bytes: &[u8]) -> Result<Vec<MatArray>, String> {
    Ok(parse_with(bytes, None)?.0)
}

/// The numeric arrays named in `wanted` (the first of each name), in file order, and the names
/// of the other numeric arrays, which are skipped without converting (or, compressed, inflating)
/// their values.
pub fn parse_only(bytes: &[u8], wanted: &[&str]) -> Result<(Vec<MatArray>, Vec<String>), String> {
    parse_with(bytes, Some(wanted))
}

fn parse_with(
    bytes: &[u8],
    wanted: Option<&[&str]>,
) -> Result<(Vec<MatArray>, Vec<String>), String> {
    if bytes.len() < 128 {
        return Err(format!(
            "{} bytes, shorter than the 128-byte header",
            bytes.len()
        ));
    }
    let order = match &bytes[126..128] {
        b"IM" => Order { big: false },
        b"MI" => Order { big: true },
        _ => return Err("no MATLAB v5 endian indicator in the header".into()),
    };
    let version = if order.big {
        u16::from_be_bytes([bytes[124], bytes[125]])
    } else {
        u16::from_le_bytes([bytes[124], bytes[125]])
    };
    if version != 0x0100 {
        return Err(format!("header version {version:#06x}, not 0x0100"));
    }
    let mut keep = Keep {
        wanted,
        arrays: Vec::new(),
        skipped: Vec::new(),
        values: 0,
    };
    // Bytes inflated so far, all compressed elements together.
    let mut total = 0u64;
    let mut rest = &bytes[128..];
    while !rest.is_empty() {
        let (e, next) = element(rest, order)?;
        rest = next;
        match e.ty {
            MI_MATRIX => keep.matrix(e.data, order)?,
            MI_COMPRESSED => {
                let left = MAX_INFLATED_TOTAL - total;
                // First only as far as the header: an array that is not read is skipped there.
                let n = HEADER_PREFIX.min(left);
                let mut prefix = Vec::new();
                flate2::read::ZlibDecoder::new(e.data)
                    .take(n)
                    .read_to_end(&mut prefix)
                    .map_err(|err| format!("a compressed element does not inflate: {err}"))?;
                let complete = (prefix.len() as u64) < n;
                if !complete && prefix.len() >= 8 {
                    if order.u32(&prefix[..4]) != MI_MATRIX {
                        total += prefix.len() as u64;
                        continue; // holds no array
                    }
                    if let Ok(Some(h)) = matrix_header(&prefix[8..], order) {
                        if !NUMERIC_CLASSES.contains(&h.class) {
                            total += prefix.len() as u64;
                            continue;
                        }
                        if !keep.wants(&h.name) {
                            total += prefix.len() as u64;
                            keep.skipped.push(h.name);
                            continue;
                        }
                    }
                }
                let inflated = if complete {
                    prefix
                } else {
                    let all = inflate(e.data, MAX_INFLATED.min(left))?;
                    if all.len() as u64 > MAX_INFLATED {
                        return Err(format!(
                            "a compressed element inflates past {} MiB",
                            MAX_INFLATED >> 20
                        ));
                    }
                    if all.len() as u64 > left {
                        return Err(format!(
                            "its compressed elements inflate past {} MiB in all",
                            MAX_INFLATED_TOTAL >> 20
                        ));
                    }
                    all
                };
                total += inflated.len() as u64;
                let (inner, _) = element(&inflated, order)?;
                if inner.ty == MI_MATRIX {
                    keep.matrix(inner.data, order)?;
                }
            }
            _ => {} // other top-level elements hold no arrays
        }
    }
    Ok((keep.arrays, keep.skipped))
}

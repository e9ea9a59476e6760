//! Every `unsafe` block of the extension: reading a Python buffer in place, lending a
//! writable one to a collective's worker thread, and exporting Rust-owned bytes (received
//! payloads, loaned slots) through the buffer protocol.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use hyperfabric::collective::{bf16, f16, DType};
use parking_lot::{Condvar, Mutex};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::{c_int, c_void};
use std::sync::Arc;

/// A C-contiguous buffer of any buffer-protocol object (bytes, bytearray, memoryview, numpy
/// array, mmap), held for as long as this value lives so the exporter cannot free or resize
/// the memory meanwhile (a `bytearray` refuses to resize while exported).
pub struct ReadBuf {
    buf: PyUntypedBuffer,
}

impl ReadBuf {
    pub fn get(obj: &Bound<'_, PyAny>) -> PyResult<ReadBuf> {
        let buf = PyUntypedBuffer::get(obj).map_err(|_| {
            PyTypeError::new_err(format!(
                "data must support the buffer protocol (bytes, bytearray, memoryview, numpy \
                 array, mmap); got {}",
                obj.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        if !buf.is_c_contiguous() {
            return Err(PyTypeError::new_err(
                "data is not C-contiguous: pass numpy.ascontiguousarray(data) (a copy) or a \
                 contiguous view",
            ));
        }
        Ok(ReadBuf { buf })
    }

    /// The bytes, in place.
    pub fn bytes(&self) -> &[u8] {
        let len = self.buf.len_bytes();
        let ptr = self.buf.buf_ptr().cast::<u8>().cast_const();
        if len == 0 || ptr.is_null() {
            return &[];
        }
        // SAFETY: `PyObject_GetBuffer` succeeded and the buffer is C-contiguous (checked in
        // `get`), so `len` bytes from `ptr` are one readable allocation, which the exporter
        // keeps alive and in place until `self.buf` is released (when `self` drops; the
        // returned borrow cannot outlive `self`). Python code in another thread may write
        // to a writable exporter meanwhile (as with any zero-copy send, e.g. pyzmq's
        // copy=False); the bytes are then only as consistent as the caller made them, they
        // are never freed under us.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// Whether a [`Region`] is still out (the worker may still write through it).
#[derive(Default)]
struct Returned {
    back: Mutex<bool>,
    cv: Condvar,
}

/// A writable, C-contiguous Python buffer lent to another thread as a [`Region`]: dropping
/// this waits until the region came back (was dropped), and only then releases the
/// exporter's buffer, so the memory can never be freed under the thread writing it.
pub struct Lent {
    buf: Option<PyUntypedBuffer>,
    returned: Arc<Returned>,
}

/// The memory of a [`Lent`] buffer, for the thread that works on it in place.
pub struct Region {
    addr: usize,
    len: usize,
    returned: Arc<Returned>,
}

/// A lent buffer seen as elements of one collective type.
pub enum Slice<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    F16(&'a mut [f16]),
    Bf16(&'a mut [bf16]),
    I32(&'a mut [i32]),
    I64(&'a mut [i64]),
    U8(&'a mut [u8]),
}

/// Lends `obj`'s buffer (writable and C-contiguous, else a `TypeError`/`ValueError`).
pub fn lend(obj: &Bound<'_, PyAny>) -> PyResult<(Lent, Region)> {
    let buf = PyUntypedBuffer::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "a collective needs a writable buffer-protocol object (numpy array, bytearray); \
             got {}",
            obj.get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        ))
    })?;
    if buf.readonly() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "the buffer is read-only: a collective works in place (pass a writable copy)",
        ));
    }
    if !buf.is_c_contiguous() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "the buffer is not C-contiguous: pass numpy.ascontiguousarray(x) and copy back",
        ));
    }
    let returned = Arc::new(Returned::default());
    let region = Region {
        addr: buf.buf_ptr() as usize,
        len: buf.len_bytes(),
        returned: Arc::clone(&returned),
    };
    Ok((
        Lent {
            buf: Some(buf),
            returned,
        },
        region,
    ))
}

impl Drop for Region {
    fn drop(&mut self) {
        *self.returned.back.lock() = true;
        self.returned.cv.notify_all();
    }
}

impl Drop for Lent {
    /// Waits for the region (a collective ends within its group's timeout), then releases.
    fn drop(&mut self) {
        let mut back = self.returned.back.lock();
        while !*back {
            self.returned.cv.wait(&mut back);
        }
        drop(back);
        drop(self.buf.take());
    }
}

/// `len` bytes at `addr` as `T`s, or why not (alignment, a partial element).
///
/// # Safety
/// `addr..addr+len` must be one writable allocation that stays valid, and is reached
/// through no other Rust reference, for the returned lifetime; every bit pattern must be
/// a valid `T`.
unsafe fn cast<'a, T>(addr: usize, len: usize, dtype: DType) -> Result<&'a mut [T], String> {
    let size = std::mem::size_of::<T>();
    if len % size != 0 {
        return Err(format!(
            "{len} bytes are not a whole number of {dtype} elements ({size} bytes each)"
        ));
    }
    if len == 0 {
        return Ok(&mut []);
    }
    if addr % std::mem::align_of::<T>() != 0 {
        return Err(format!(
            "the buffer is not aligned for {dtype} (address {addr:#x}): pass a copy"
        ));
    }
    // SAFETY: non-null (a non-empty exporter buffer), aligned and a whole number of `T`
    // (checked above); validity, exclusivity and lifetime are the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(addr as *mut T, len / size) })
}

impl Region {
    /// The memory as elements of `dtype`, in place.
    pub fn slice(&mut self, dtype: DType) -> Result<Slice<'_>, String> {
        let (a, n) = (self.addr, self.len);
        // Why the casts below are sound: a `Region` is only made by `lend`, whose `Lent` keeps the
        // exporter's buffer (writable, C-contiguous, `len` bytes at `addr`) until this region
        // is dropped; the slice borrows `self` mutably, so it is the one Rust reference and
        // cannot outlive the region. Every bit pattern is a valid value of these seven plain
        // numeric types. Python code touching the array meanwhile breaks the collective's
        // documented rule (as with any in-place collective), not memory safety of the owner.
        Ok(match dtype {
            // SAFETY: as above.
            DType::F32 => Slice::F32(unsafe { cast(a, n, dtype)? }),
            // SAFETY: as above.
            DType::F64 => Slice::F64(unsafe { cast(a, n, dtype)? }),
            // SAFETY: as above.
            DType::F16 => Slice::F16(unsafe { cast(a, n, dtype)? }),
            // SAFETY: as above.
            DType::Bf16 => Slice::Bf16(unsafe { cast(a, n, dtype)? }),
            // SAFETY: as above.
            DType::I32 => Slice::I32(unsafe { cast(a, n, dtype)? }),
            // SAFETY: as above.
            DType::I64 => Slice::I64(unsafe { cast(a, n, dtype)? }),
            // SAFETY: as above.
            DType::U8 => Slice::U8(unsafe { cast(a, n, dtype)? }),
        })
    }
}

/// Fills `view` for a buffer request on `owner` over `len` bytes at `ptr`.
///
/// # Safety
/// `view` must be the pointer CPython passed to `__getbuffer__`, and `ptr..ptr+len` must stay
/// valid (and, when `writable`, writable by Python) for as long as `owner` is alive and the
/// view is not released: `PyBuffer_FillInfo` takes a reference to `owner`.
pub unsafe fn fill_view(
    owner: &Bound<'_, PyAny>,
    view: *mut ffi::Py_buffer,
    flags: c_int,
    ptr: *const u8,
    len: usize,
    writable: bool,
) -> PyResult<()> {
    if !writable && (flags & ffi::PyBUF_WRITABLE) == ffi::PyBUF_WRITABLE {
        return Err(PyBufferError::new_err(
            "a received payload is read-only (it may be the sender's shared-memory slot); \
             copy it (bytes(msg), numpy.array(msg)) to write",
        ));
    }
    let len = isize::try_from(len).map_err(|_| PyBufferError::new_err("payload too large"))?;
    // SAFETY: the caller guarantees `view` is CPython's request and the memory outlives
    // every view of `owner`; `PyBuffer_FillInfo` only writes `view` and increfs `owner`.
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast_mut().cast::<c_void>(),
            len,
            c_int::from(!writable),
            flags,
        )
    };
    if rc == -1 {
        return Err(PyErr::fetch(owner.py()));
    }
    Ok(())
}

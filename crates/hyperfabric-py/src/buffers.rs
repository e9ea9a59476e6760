//! Every `unsafe` block of the extension: reading a Python buffer in place, and exporting
//! Rust-owned bytes (received payloads, loaned slots) through the buffer protocol.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::{c_int, c_void};

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

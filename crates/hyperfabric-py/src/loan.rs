//! A loaned send buffer (`Node.loan`): a writable slot of the link's shared-memory pool (or a
//! heap buffer where the link has none), exported to Python as a writable buffer. It can be
//! sent only once no view of it is left, so no Python object can write into a slot the
//! receiver is reading.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use crate::buffers::fill_view;
use hyperfabric::LoanedBuf;
use parking_lot::Mutex;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::c_int;

#[pyclass(frozen, module = "hyperfabric._native")]
pub struct Loan {
    /// `None` once sent. `exports` counts live views; both change under this one lock.
    state: Mutex<LoanState>,
    len: usize,
    shared: bool,
    destination: String,
}

struct LoanState {
    buf: Option<LoanedBuf>,
    exports: usize,
}

impl Loan {
    pub fn new(buf: LoanedBuf) -> Loan {
        Loan {
            len: buf.len(),
            shared: buf.is_shared(),
            destination: buf.destination().to_owned(),
            state: Mutex::new(LoanState {
                buf: Some(buf),
                exports: 0,
            }),
        }
    }

    /// Takes the buffer out to send it; refused while a view of it is alive.
    pub fn take(&self) -> PyResult<LoanedBuf> {
        let mut st = self.state.lock();
        if st.exports > 0 {
            return Err(PyBufferError::new_err(format!(
                "{} view(s) of this loan are still alive: release them (del / \
                 memoryview.release()) before sending",
                st.exports
            )));
        }
        st.buf
            .take()
            .ok_or_else(|| PyValueError::new_err("this loan was already sent"))
    }
}

#[pymethods]
impl Loan {
    /// True when the buffer is a slot of a shared-memory pool (sent by descriptor).
    #[getter]
    fn is_shared(&self) -> bool {
        self.shared
    }
    #[getter]
    fn destination(&self) -> &str {
        &self.destination
    }
    /// False once sent.
    #[getter]
    fn is_open(&self) -> bool {
        self.state.lock().buf.is_some()
    }
    fn __len__(&self) -> usize {
        self.len
    }

    /// # Safety
    /// Called by CPython with a valid `view` only.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let loan = slf.get();
        let mut st = loan.state.lock();
        let Some(buf) = st.buf.as_mut() else {
            return Err(PyBufferError::new_err("this loan was already sent"));
        };
        let bytes: &mut [u8] = buf;
        let (ptr, len) = (bytes.as_mut_ptr().cast_const(), bytes.len());
        // SAFETY: `view` is CPython's request. The slot (or heap block) stays in place while
        // the loan holds it, and `take` refuses to hand it out while `exports > 0`, which
        // this view keeps raised until `__releasebuffer__`.
        unsafe { fill_view(slf.as_any(), view, flags, ptr, len, true)? };
        st.exports += 1;
        Ok(())
    }

    /// # Safety
    /// Called by CPython with a view this object filled.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut st = self.state.lock();
        st.exports = st.exports.saturating_sub(1);
    }
}

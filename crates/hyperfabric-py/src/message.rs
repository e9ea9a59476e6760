//! A received message, exported to Python as a read-only buffer over its Rust-owned bytes:
//! `memoryview(msg)` / `numpy.frombuffer(msg, ...)` read the payload in place (the sender's
//! shared-memory slot itself when it loaned or sent one chunk by descriptor).
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use crate::buffers::fill_view;
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::c_int;

#[pyclass(frozen, module = "hyperfabric._native")]
pub struct Message {
    inner: hyperfabric::Message,
}

impl Message {
    pub fn new(inner: hyperfabric::Message) -> Message {
        Message { inner }
    }
}

#[pymethods]
impl Message {
    /// The node that sent it.
    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }
    #[getter]
    fn transfer_id(&self) -> u64 {
        self.inner.transfer_id
    }
    /// The data type's name (`tensor`, `gradient`, ..., `custom`).
    #[getter]
    fn data_type(&self) -> &'static str {
        self.inner.data_type.as_str()
    }
    #[getter]
    fn priority(&self) -> &'static str {
        self.inner.priority.as_str()
    }
    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }
    /// The transform the sender applied (`none`, `topk`, `fp16`, ...).
    #[getter]
    fn transform(&self) -> String {
        self.inner.transform.to_string()
    }
    /// True when the payload is read in place from the sender's shared-memory slot.
    #[getter]
    fn is_shared(&self) -> bool {
        self.inner.payload.is_shared()
    }
    fn __len__(&self) -> usize {
        self.inner.payload.len()
    }
    fn __repr__(&self) -> String {
        format!(
            "Message(source={:?}, data_type={:?}, bytes={}, shared={})",
            self.inner.source,
            self.inner.data_type.as_str(),
            self.inner.payload.len(),
            self.inner.payload.is_shared()
        )
    }

    /// # Safety
    /// Called by CPython with a valid `view` only.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let bytes: &[u8] = &slf.get().inner.payload;
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        // SAFETY: `view` is CPython's request. The payload (a Vec's heap block or a mapped
        // pool slot) never moves or changes: the class is frozen and nothing mutates it, and
        // it lives as long as the object, which every view references.
        unsafe { fill_view(slf.as_any(), view, flags, ptr, len, false) }
    }

    /// # Safety
    /// Called by CPython with a view this object filled.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}

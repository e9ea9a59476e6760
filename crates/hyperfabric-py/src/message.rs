//! A received message, exported to Python as a read-only buffer over its Rust-owned bytes:
//! `memoryview(msg)` / `numpy.frombuffer(msg, ...)` read the payload in place (the sender's
//! shared-memory slot itself when it loaned or sent one chunk by descriptor).
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use crate::buffers::fill_view;
use hyperfabric::transform::{dequantize, TopK};
use hyperfabric::Transform;
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
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

    /// The float32 tensor the sender sent, decoded from its transform (top-k: dense with
    /// zeros where nothing was sent; fp16 / bf16 / int8: dequantised), as little-endian
    /// float32 bytes (a new buffer). Raises `ValueError` for bytes that are no such tensor.
    fn decode_f32<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let payload: &[u8] = &self.inner.payload;
        let transform = self.inner.transform;
        let values = py.detach(|| -> Result<Vec<f32>, String> {
            match transform {
                Transform::TopK => TopK::decode(payload).map_err(|e| e.to_string()),
                Transform::Fp16 | Transform::Bf16 | Transform::Int8 => {
                    dequantize(payload).map_err(|e| e.to_string())
                }
                Transform::None | Transform::Cache => {
                    if payload.len() % 4 != 0 {
                        return Err(format!(
                            "{} bytes are not a float32 tensor (not a multiple of 4)",
                            payload.len()
                        ));
                    }
                    Ok(payload
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect())
                }
            }
        });
        let values = values.map_err(PyValueError::new_err)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(PyBytes::new(py, &bytes))
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

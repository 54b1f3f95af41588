# Compile-time declarations for primitives.py (see upstream.pxd).
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef bint _COMPILED


cdef class Clock:
    @staticmethod
    @cython.locals(ts=timespec)
    cdef double now() noexcept


cdef class Bytes:
    @staticmethod
    cdef bytes cut(bytes data, Py_ssize_t start, Py_ssize_t stop)

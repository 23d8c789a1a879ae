# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled wire backend: the semantics of ``_wire_py.py``, in one pass over a const buffer.

Why it is written this way:
* The input is never split or copied whole: one cursor walks ``p[0:end]`` and every index is
  checked against ``end`` by hand (a C pointer has no IndexError).
* The three protocol names and the two actions are recognised on the raw bytes, so a typical
  command creates no temporary strings; only extra parameters and escaped text are decoded.
* ``orjson.loads`` is called from here (the fused ``decode_command``). The lenient retry and the
  error text live in ``_lenient.py``: they run only after strict decoding failed.
"""

from cpython.object cimport PyObject, PyTypeObject
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_Check, PyUnicode_DecodeUTF8
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp

import orjson

from ._command import Command
from ._lenient import retry_or_raise
from .errors import WireError

cdef extern from "Python.h":
    PyTypeObject PyTuple_Type

cdef object _loads = orjson.loads
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef type _Command = Command
cdef str _USER_DEFINE = "user_define"
cdef str _INNER_DEFINE = "inner_define"
cdef tuple _NO_PARAMS = ()

DEFAULT_MAX_SIZE = 16384

cdef enum Name:
    NAME_OTHER
    NAME_ACTION
    NAME_CHANNEL
    NAME_CMD


cdef inline int _hexval(unsigned char c) noexcept nogil:
    if 0x30 <= c <= 0x39:
        return c - 0x30
    if 0x61 <= c <= 0x66:
        return c - 0x57
    if 0x41 <= c <= 0x46:
        return c - 0x37
    return -1


cdef inline bint _plain(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """True when ``s`` has no ``%`` or ``+``: its decoded form is its UTF-8 decoding."""
    cdef Py_ssize_t i
    for i in range(n):
        if s[i] == 0x25 or s[i] == 0x2B:
            return False
    return True


cdef str _form_decode(const unsigned char* s, Py_ssize_t n):
    """WHATWG decoding of one name or value: ``+`` is a space, bad escapes stay literal."""
    cdef unsigned char small[256]
    cdef unsigned char* out
    cdef Py_ssize_t i = 0, j = 0
    cdef int hi, lo
    if _plain(s, n):
        return PyUnicode_DecodeUTF8(<const char*>s, n, "replace")
    out = &small[0]
    if n > 256:
        out = <unsigned char*>malloc(n)
    if out == NULL:
        raise MemoryError()
    try:
        while i < n:
            out[j] = s[i]
            if s[i] == 0x2B:
                out[j] = 0x20
            elif s[i] == 0x25 and i + 2 < n:
                hi = _hexval(s[i + 1])
                lo = _hexval(s[i + 2])
                if hi >= 0 and lo >= 0:
                    out[j] = <unsigned char>(hi * 16 + lo)
                    i += 2
            i += 1
            j += 1
        return PyUnicode_DecodeUTF8(<const char*>out, j, "replace")
    finally:
        if out != &small[0]:
            free(out)


cdef inline Name _classify(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    if n == 3 and memcmp(s, b"cmd", 3) == 0:
        return NAME_CMD
    if n == 6 and memcmp(s, b"action", 6) == 0:
        return NAME_ACTION
    if n == 7 and memcmp(s, b"channel", 7) == 0:
        return NAME_CHANNEL
    return NAME_OTHER


cdef inline Py_ssize_t _json_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """Index just past the bracket that closes the one at ``i``, or ``end`` if none does."""
    cdef Py_ssize_t depth = 0
    cdef unsigned char c
    while i < end:
        c = p[i]
        if c == 0x22:
            i += 1
            while i < end and p[i] != 0x22:
                i += 2 if p[i] == 0x5C else 1
        elif c == 0x7B or c == 0x5B:
            depth += 1
        elif c == 0x7D or c == 0x5D:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return end


cdef inline Py_ssize_t _skip_ws(const unsigned char* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    while i < end and (p[i] == 0x20 or p[i] == 0x09 or p[i] == 0x0D or p[i] == 0x0A):
        i += 1
    return i


cdef long long _digits(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """The value of ``n`` ASCII digits if it is below 2**32, else -1."""
    cdef unsigned long long v = 0
    cdef Py_ssize_t i
    if n == 0:
        return -1
    for i in range(n):
        if s[i] < 0x30 or s[i] > 0x39:
            return -1
        v = v * 10 + (s[i] - 0x30)
        if v >= 4294967296ULL:
            return -1
    return <long long>v


cdef tuple _scan(object owner, const unsigned char* p, Py_ssize_t size, Py_ssize_t max_size,
                 Py_ssize_t* payload_at):
    """Parse ``p[0:size]`` into the fields of a Command (a plain tuple: the Command itself is
    built only when a caller needs it); ``owner`` is the bytes object behind ``p`` if any."""
    cdef Py_ssize_t end = size, pos = 0, amp, eq, name_end, first, close, after
    cdef const unsigned char* hit
    cdef Name kind
    cdef object action = None, cmd = None, payload = None, params = None
    cdef str name, value
    cdef bytes encoded
    cdef long long channel = -1, number
    payload_at[0] = -1
    if size > max_size:
        raise WireError(f"command exceeds {max_size} bytes", max_size)
    while end > 0 and (p[end - 1] == 0 or p[end - 1] == 0x0D or p[end - 1] == 0x0A):
        end -= 1
    if end == 0:
        raise WireError("empty command", 0)
    if p[0] == 0x7B:
        payload_at[0] = 0
        if end == size and owner is not None and PyBytes_CheckExact(owner):
            payload = owner
        else:
            payload = PyBytes_FromStringAndSize(<const char*>p, end)
        return (_USER_DEFINE, 0, None, payload, _NO_PARAMS)

    while pos < end:
        hit = <const unsigned char*>memchr(p + pos, 0x26, end - pos)
        amp = end if hit == NULL else hit - p
        if amp == pos:
            pos += 1
            continue
        hit = <const unsigned char*>memchr(p + pos, 0x3D, amp - pos)
        eq = -1 if hit == NULL else hit - p
        name_end = amp if eq < 0 else eq
        kind = _classify(p + pos, name_end - pos)
        name = None
        if kind == NAME_OTHER and not _plain(p + pos, name_end - pos):
            name = _form_decode(p + pos, name_end - pos)
            kind = (NAME_CMD if name == "cmd" else NAME_ACTION if name == "action"
                    else NAME_CHANNEL if name == "channel" else NAME_OTHER)

        if kind == NAME_CMD and eq >= 0:
            first = _skip_ws(p, eq + 1, end)
            if first < end and (p[first] == 0x7B or p[first] == 0x5B):
                close = _json_end(p, first, end)
                after = _skip_ws(p, close, end)
                if after < end and p[after] != 0x26:
                    raise WireError("unexpected byte after the JSON value of 'cmd'", after)
                if cmd is not None or payload is not None:
                    raise WireError("duplicate 'cmd' parameter", pos)
                payload = PyBytes_FromStringAndSize(<const char*>p + eq + 1, close - eq - 1)
                payload_at[0] = eq + 1
                pos = after + 1
                continue

        if kind == NAME_CMD:
            if cmd is not None or payload is not None:
                raise WireError("duplicate 'cmd' parameter", pos)
            if eq < 0 or eq + 1 == amp:
                raise WireError("'cmd' is empty", pos)
            value = _form_decode(p + eq + 1, amp - eq - 1)
            if not value:
                raise WireError("'cmd' is empty", pos)
            if value[0] == "{" or value[0] == "[":
                payload = value.encode("utf-8", "surrogatepass")
                payload_at[0] = ~(eq + 1)  # decoded: errors point at the value, see retry_or_raise
            else:
                cmd = value
        elif kind == NAME_ACTION:
            if action is not None:
                raise WireError("duplicate 'action' parameter", pos)
            if eq >= 0 and amp - eq - 1 == 11 and memcmp(p + eq + 1, b"user_define", 11) == 0:
                action = _USER_DEFINE
            elif eq >= 0 and amp - eq - 1 == 12 and memcmp(p + eq + 1, b"inner_define", 12) == 0:
                action = _INNER_DEFINE
            else:
                value = _form_decode(p + eq + 1, amp - eq - 1) if eq >= 0 else ""
                if value == _USER_DEFINE:
                    action = _USER_DEFINE
                elif value == _INNER_DEFINE:
                    action = _INNER_DEFINE
                else:
                    raise WireError("'action' must be 'user_define' or 'inner_define'", pos)
        elif kind == NAME_CHANNEL:
            if channel >= 0:
                raise WireError("duplicate 'channel' parameter", pos)
            if eq < 0:
                number = -1
            elif _plain(p + eq + 1, amp - eq - 1):
                number = _digits(p + eq + 1, amp - eq - 1)
            else:
                encoded = _form_decode(p + eq + 1, amp - eq - 1).encode("utf-8", "surrogatepass")
                number = _digits(<const unsigned char*>PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))
            if number < 0:
                raise WireError("'channel' must be a decimal number below 2**32", pos)
            channel = number
        else:
            if name is None:
                name = _form_decode(p + pos, name_end - pos)
            value = _form_decode(p + eq + 1, amp - eq - 1) if eq >= 0 else ""
            if params is None:
                params = []
            params.append((name, value))
        pos = amp + 1

    if action is None:
        raise WireError("missing 'action' parameter", end)
    if cmd is None and payload is None:
        raise WireError("missing 'cmd' parameter", end)
    return (action, channel if channel >= 0 else 0, cmd, payload, _NO_PARAMS if params is None else tuple(params))


cdef tuple _parse(object raw, Py_ssize_t max_size, Py_ssize_t* payload_at):
    cdef Py_buffer view
    cdef tuple result
    if PyUnicode_Check(raw):
        if len(<str>raw) > max_size:  # every character takes at least one byte: refuse before encoding
            raise WireError(f"command exceeds {max_size} bytes", max_size)
        raw = (<str>raw).encode("utf-8", "surrogatepass")
    if PyBytes_Check(raw):
        return _scan(raw, <const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw),
                     max_size, payload_at)
    if not isinstance(raw, (bytearray, memoryview)):
        raise TypeError(f"expected bytes, bytearray, memoryview or str, not {type(raw).__name__}")
    if isinstance(raw, memoryview) and not (<memoryview>raw).c_contiguous:
        return _parse(bytes(raw), max_size, payload_at)
    PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)
    try:
        result = _scan(None, <const unsigned char*>view.buf, view.len, max_size, payload_at)
    finally:
        PyBuffer_Release(&view)
    return result


cdef inline object _named(type cls, tuple items):
    """``cls(*items)`` for a NamedTuple class: ``tuple.__new__`` without the method call."""
    cdef tuple args = (items,)
    return PyTuple_Type.tp_new(cls, <PyObject*>args, NULL)


cdef object _decode(object payload, Py_ssize_t offset):
    try:
        return _loads(payload)
    except _JSONDecodeError as exc:
        return retry_or_raise(payload, offset, exc)


def parse_command(raw, /, *, Py_ssize_t max_size=DEFAULT_MAX_SIZE):
    """Parse one command string (docs/protocol.md §2); see ``_wire_py.parse_command``."""
    cdef Py_ssize_t payload_at
    return _named(_Command, _parse(raw, max_size, &payload_at))


def loads(payload, Py_ssize_t offset=0):
    """Decode a JSON payload with orjson, leniently; see ``_wire_py.loads``."""
    return _decode(payload, offset)


def decode_command(raw, /, *, Py_ssize_t max_size=DEFAULT_MAX_SIZE):
    """Parse a command string and decode its JSON payload; see ``_wire_py.decode_command``."""
    cdef Py_ssize_t payload_at
    cdef tuple parts = _parse(raw, max_size, &payload_at)
    return _named(_Command, parts), None if parts[3] is None else _decode(parts[3], payload_at)

# IP addresses as text, read and written in a caller's buffer: shared by
# cidr.pyx (client addresses, canonical) and proxyproto.pyx (the PROXY
# header's addresses). Inline only, so no module of its own exists at run
# time: each user compiles these in.

cdef inline int hex_digit(unsigned char c) noexcept nogil:
    """The value of one hex digit, either case; -1 for any other byte."""
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef inline char *put_decimal(char *out, unsigned int v) noexcept:
    """``v`` (0..255) in decimal without leading zeros; returns the end."""
    if v >= 100:
        out[0] = <char>(48 + v // 100)
        out += 1
    if v >= 10:
        out[0] = <char>(48 + v // 10 % 10)
        out += 1
    out[0] = <char>(48 + v % 10)
    return out + 1


cdef inline char *put_quad(char *out, unsigned int a, unsigned int b, unsigned int c,
                           unsigned int d) noexcept:
    """A dotted quad; at most 15 bytes."""
    out = put_decimal(out, a)
    out[0] = b'.'
    out = put_decimal(out + 1, b)
    out[0] = b'.'
    out = put_decimal(out + 1, c)
    out[0] = b'.'
    return put_decimal(out + 1, d)


cdef inline char *put_hex(char *out, unsigned int v) noexcept:
    """A 16-bit group in lowercase hex without leading zeros."""
    cdef const char *digits = b"0123456789abcdef"
    cdef int shift = 12
    while shift > 0 and (v >> shift) == 0:
        shift -= 4
    while shift >= 0:
        out[0] = digits[(v >> shift) & 15]
        out += 1
        shift -= 4
    return out


cdef inline char *put_ipv6_groups(char *out, const unsigned int *w) noexcept:
    """Eight groups as RFC 5952 writes them (as ``str(IPv6Address)``): the
    longest run of two or more zero groups as "::", the first on a tie; at
    most 39 bytes."""
    cdef int i, run = 0, best = -1, best_len = 1
    for i in range(8):
        run = run + 1 if w[i] == 0 else 0
        if run > best_len:
            best = i - run + 1
            best_len = run
    if best < 0:
        best = 8  # no run: every group written, none skipped
        best_len = 0
    for i in range(best):
        if i:
            out[0] = b':'
            out += 1
        out = put_hex(out, w[i])
    if best < 8:
        out[0] = b':'
        out[1] = b':'
        out += 2
        for i in range(best + best_len, 8):
            if i > best + best_len:
                out[0] = b':'
                out += 1
            out = put_hex(out, w[i])
    return out

"""lbproxy.tls.sni: the name table the SNI callback reads (pure)."""

from __future__ import annotations

from lbproxy.tls.sni import NameTable


def test_exact_before_wildcard_one_label_case_insensitive() -> None:
    table = NameTable([(["*.Example.com", "example.com"], "wild"), (["api.example.com"], "api")])
    assert table.lookup("api.example.com") == "api"  # exact wins over an earlier wildcard
    assert table.lookup("WWW.example.COM.") == "wild"
    assert table.lookup("example.com") == "wild"  # by its exact name, not the wildcard
    assert table.lookup("a.b.example.com") is None
    assert table.lookup(".example.com") is None
    assert table.lookup("other.test") is None
    assert table.lookup(None) is None
    assert table.lookup("") is None


def test_first_certificate_claiming_a_name_keeps_it() -> None:
    table = NameTable([(["a.test", "*.w.test"], 1), (["a.test", "*.w.test", "b.test"], 2)])
    assert (table.lookup("a.test"), table.lookup("x.w.test"), table.lookup("b.test")) == (1, 1, 2)

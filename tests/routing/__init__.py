"""Tests of lbproxy.routing. A package so that test modules here may share a
basename with one elsewhere (tests/http/test_geo.py and test_geo.py here)."""

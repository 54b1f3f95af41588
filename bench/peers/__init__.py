"""Other Python proxies that bench/compare.py runs as peers."""

"""The data path: client and upstream HTTP/1.1 protocols and what joins them."""

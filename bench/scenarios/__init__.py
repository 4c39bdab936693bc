"""The six scenarios of `make bench`, one module each; each returns a JSON-able dict."""

"""uvhttpd benchmark harness; bench/run is its command line."""

"""Login tests: a browser logs in through HAProxy and the hub at a real OpenID Connect provider."""

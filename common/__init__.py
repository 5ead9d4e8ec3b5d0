"""What the handheld and the server share: wire schemas, contract version, geo and rules."""

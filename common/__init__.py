"""What the handheld and the server share, on the standard library (+ geopy) so that it ships in
the APK: the wire (wire.py), the contract version, the job lifecycle, the clock, geo and rules."""

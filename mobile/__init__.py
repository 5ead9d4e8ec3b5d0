"""The Gridwalk handheld: core/ (no Kivy) and ui/ (Kivy screens that only show and forward)."""

APP_VERSION = "0.1.0"

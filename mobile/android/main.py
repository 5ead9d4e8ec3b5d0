"""The Android entry point: python-for-android runs main.py; the data lives in app storage."""

from android.storage import app_storage_path  # type: ignore[import-not-found]

from mobile.main import main

main(["--data-dir", app_storage_path()])

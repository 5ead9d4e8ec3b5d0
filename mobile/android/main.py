"""The Android entry point: python-for-android runs main.py; the data lives in app storage."""

from android.storage import app_storage_path  # python-for-android provides it on the device

from mobile.main import main

main(["--data-dir", app_storage_path()])

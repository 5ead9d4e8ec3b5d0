"""The handheld's logic: store, outbox, sync client, location sources, route logic. No Kivy."""

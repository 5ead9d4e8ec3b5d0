"""Billing: what the utility's billing system takes from Gridwalk (遍抄遍算)."""

"""Connects the deployments layer's `frontier_changed` signal to the frontier."""

"""posenas_core.ops"""

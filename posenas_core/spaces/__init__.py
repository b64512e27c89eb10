"""posenas_core.spaces"""

"""posenas_core.search"""

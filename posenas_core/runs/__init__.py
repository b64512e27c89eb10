"""posenas_core.runs"""

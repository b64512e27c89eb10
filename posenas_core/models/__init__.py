"""posenas_core.models"""

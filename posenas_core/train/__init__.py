"""posenas_core.train"""

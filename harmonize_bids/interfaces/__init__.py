"""Thin nipype interfaces: a spec plus one call into image/ or model/."""

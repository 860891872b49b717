"""nipype graph factories (init_*_wf): what connects to what, settings as keywords."""

"""Studies: sweeps of whole runs that test a claim (``unlearnbench study ...``); library code,
no printing (``cli_study`` prints)."""

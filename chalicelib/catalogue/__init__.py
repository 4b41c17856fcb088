"""What a job can ask for and what it costs the server: marketplace presets (presets.json, their
compliance check) and the money side of a job (budget cap, price per call, actual cost; the
estimate's arithmetic is core's, since the web app computes it too). Imports core, models and
imaging.
"""

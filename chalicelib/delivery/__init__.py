"""What a finished job hands out: the variant picked per image, the JSON/CSV report and its rewrites,
the zip archives, the job's email and its completion webhook. Imports core, models, imaging,
catalogue and store.
"""

"""The image models Backdrop calls: their catalogue (models.json, registry), one adapter per family
that turns a job's settings into a Bedrock request and reads the answer, and their lifecycle.
Imports core only.
"""

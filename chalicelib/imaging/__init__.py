"""Pixels: decoding and checking photos (images), compositing a subject over a new background
(compose), the quality scorecard's measurements and Rekognition checks (quality), and batch
consistency. Pillow and numpy are imported inside the functions that need them, never by the API at
cold start. Imports core and models.
"""

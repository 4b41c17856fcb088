"""A job as its owner sees it: submit and read back (service), cancel and delete (control), review
before delivery, uploads and labels. Imports every package before it, never api.
"""

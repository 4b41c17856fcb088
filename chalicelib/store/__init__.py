"""Where state lives: the jobs table's owner (jobs: item shapes, keys, pages, status transitions),
whether an S3 object exists, told by LIST rather than by a 403 (s3keys), and the cached boto3
clients (clients). Nothing above this package builds a table item or a client by hand. Imports core
and the packages before it.
"""

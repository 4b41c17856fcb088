"""Where state lives: the jobs table's owner (jobs: `JobStore`, composed of one class per concern —
items: item shapes and limits, base: keys and guarded calls, job_items, images, transitions, closing,
review, costs, background, deletion, notify, labels), whether an S3 object exists, told by LIST rather
than by a 403 (s3keys), and the cached boto3 clients (clients). Nothing above this package builds a
table item or a client by hand. Imports core and the packages before it.
"""

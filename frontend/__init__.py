"""Backdrop front ends: the API client, the command-line client and the Streamlit app."""

"""Deployment files shipped with the package (data only): see stream/devtools/deploy_files.py."""

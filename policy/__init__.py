"""The jupyterhub-platform policy pack (`pulumi preview --policy-pack policy`)."""

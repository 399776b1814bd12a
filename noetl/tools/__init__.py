"""The tool kinds a command or a playbook step can use: one module per kind, listed in ``registry``."""

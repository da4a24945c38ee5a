"""Sub-command groups of the `mmsearch-gym` command line, mounted by `mmsearch_gym.cli`."""

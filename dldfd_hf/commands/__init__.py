"""Sub-commands of the ``dldfd`` CLI (see :data:`dldfd_hf.cli.COMMAND_MODULES`)."""
